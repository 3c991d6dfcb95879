use super::*;

#[test]
fn admin_token_is_generated_once_then_read() {
    let dir = std::env::temp_dir().join(format!("antenna-admin-token-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let loc = StoreLocation::Dir(dir.clone());
    let (t1, src) = admin_token(&loc, None, [7; 32]).unwrap();
    assert_eq!(src, TokenSource::Created(dir.join(ADMIN_TOKEN_FILE)));
    assert_eq!(t1.len(), 64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(ADMIN_TOKEN_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (t2, src) = admin_token(&loc, None, [8; 32]).unwrap();
    assert_eq!(
        (t2, src),
        (t1, TokenSource::Read(dir.join(ADMIN_TOKEN_FILE)))
    );
    // An explicit file; a too-short token is refused.
    let short = dir.join("short");
    std::fs::write(&short, "abc\n").unwrap();
    assert!(admin_token(&loc, Some(&short), [0; 32]).is_err());
    // A data directory that is a file: a token for this run; an explicit file there: error.
    let not_dir = StoreLocation::Dir(short.clone());
    let (_, src) = admin_token(&not_dir, None, [1; 32]).unwrap();
    assert_eq!(src, TokenSource::Ephemeral);
    assert!(admin_token(&loc, Some(&short.join("t")), [1; 32]).is_err());
    let (t3, src) = admin_token(&StoreLocation::Memory, None, [9; 32]).unwrap();
    assert_eq!((t3.len(), src), (64, TokenSource::Ephemeral));
    let _ = std::fs::remove_dir_all(&dir);
}
