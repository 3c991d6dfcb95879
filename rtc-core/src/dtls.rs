//! DTLS for every session from one shared dimpl configuration.
//!
//! str0m's aws-lc-rs provider builds a new `dimpl::Config` for every `Rtc`, and building one
//! validates the crypto provider by running its key exchanges and signatures: about 11 million
//! instructions (several milliseconds) per session, on the event loop, for a result that is
//! the same every time. [`SharedDtls`] builds the configuration once and hands the same
//! `Arc<dimpl::Config>` to each session's `dimpl::Dtls`; everything else is dimpl's, as in
//! str0m's provider.
//!
//! [`SfuCrypto`] is what an [`crate::Sfu`] is given through [`crate::SfuConfig`]: the crypto
//! provider (with its own [`SharedDtls`]) and the DTLS certificate of every session. There is
//! no process-wide provider: two `Sfu`s given two `SfuCrypto`s share nothing.
//!
//! Each session's DTLS also keeps the SRTP keying material it exported, in a [`KeySlot`] the
//! SFU's session takes when it is created (the forwarding fast path, `fast.rs`, seals a
//! player's RTP with it). str0m builds a session's DTLS when the `Rtc` is built, so the slot
//! of the last DTLS made is the one of the `Rtc` just built: [`SharedDtls::take_last_slot`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};

/// The crypto provider and DTLS certificate of every session of one [`crate::Sfu`].
///
/// Cloning shares them (the provider is an `Arc`, the certificate the same key pair).
#[derive(Debug, Clone)]
pub struct SfuCrypto {
    /// str0m's provider with its DTLS provider replaced by a [`SharedDtls`].
    pub provider: Arc<CryptoProvider>,
    /// The certificate every session presents (`None` if the provider made none).
    pub cert: Option<DtlsCert>,
    /// The DTLS provider inside `provider`, to take each new session's [`KeySlot`] from.
    pub(crate) dtls: &'static SharedDtls,
}

impl SfuCrypto {
    /// str0m's provider for the enabled crypto feature, with a new [`SharedDtls`] and a new
    /// certificate.
    pub fn generate() -> Self {
        Self::from_provider(str0m::crypto::from_feature_flags())
    }

    /// `provider` with a new [`SharedDtls`] in front of its DTLS provider, and a certificate
    /// made by it.
    pub fn from_provider(provider: CryptoProvider) -> Self {
        let (provider, dtls) = SharedDtls::install(provider);
        let cert = provider.dtls_provider.generate_certificate();
        SfuCrypto {
            provider: Arc::new(provider),
            cert,
            dtls,
        }
    }
}

/// A [`DtlsProvider`] whose sessions share one validated `dimpl::Config` per MTU.
#[derive(Debug)]
pub struct SharedDtls {
    /// The provider it stands in for: certificate generation is delegated to it.
    inner: &'static dyn DtlsProvider,
    /// `(mtu, config)`: str0m asks with the same MTU every time; another one gets its own.
    configs: Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>>,
    /// The key slot of the DTLS session made last (see the module's note).
    last_slot: Mutex<Option<Arc<KeySlot>>>,
}

/// The SRTP keying material one session's DTLS exported (RFC 5764 section 4.2), once its
/// handshake is done.
#[derive(Default)]
pub(crate) struct KeySlot(Mutex<Option<SrtpKeys>>);

impl std::fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySlot")
    }
}

impl KeySlot {
    /// The keys, once: the slot is empty afterwards.
    pub(crate) fn take(&self) -> Option<SrtpKeys> {
        self.0.lock().ok()?.take()
    }

    fn put(&self, keys: SrtpKeys) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(keys);
        }
    }
}

/// Exported SRTP keying material: both sides' master keys, then both sides' master salts.
pub(crate) struct SrtpKeys {
    pub material: Vec<u8>,
    pub profile: SrtpProfile,
    /// This side was the DTLS client (its keys are the "client write" ones).
    pub active: bool,
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the material.
        f.debug_struct("SrtpKeys")
            .field("profile", &self.profile)
            .field("active", &self.active)
            .finish()
    }
}

impl SharedDtls {
    /// `provider` with its DTLS provider replaced by a new shared one.
    ///
    /// str0m's `CryptoProvider::dtls_provider` is a `&'static dyn DtlsProvider`, so the new
    /// provider is leaked: a few hundred bytes plus one dimpl configuration per MTU, once per
    /// call. Call it once per [`crate::Sfu`] (through [`SfuCrypto`]), not per session.
    pub fn install(mut provider: CryptoProvider) -> (CryptoProvider, &'static SharedDtls) {
        let inner = provider.dtls_provider;
        let shared: &'static SharedDtls = Box::leak(Box::new(SharedDtls::new(inner)));
        provider.dtls_provider = shared;
        (provider, shared)
    }

    fn new(inner: &'static dyn DtlsProvider) -> Self {
        SharedDtls {
            inner,
            configs: Mutex::new(Vec::new()),
            last_slot: Mutex::new(None),
        }
    }

    /// The key slot of the DTLS session made last, once. Called right after an `Rtc` is
    /// built (str0m makes its DTLS then), it is that `Rtc`'s.
    pub(crate) fn take_last_slot(&self) -> Option<Arc<KeySlot>> {
        self.last_slot.lock().ok()?.take()
    }

    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        let mut configs = self
            .configs
            .lock()
            .map_err(|_| CryptoError::Other("dimpl config cache poisoned".into()))?;
        if let Some((_, c)) = configs.iter().find(|(m, _)| *m == mtu) {
            return Ok(c.clone());
        }
        // ICE has proved the peer's address before DTLS starts: no server cookie needed.
        let mut builder = dimpl::Config::builder().use_server_cookie(false);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("dimpl config: {e}")))?,
        );
        configs.push((mtu, config.clone()));
        Ok(config)
    }
}

impl DtlsProvider for SharedDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = self.config(mtu)?;
        let cert = cert.clone();
        let dtls = match version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            other => {
                return Err(CryptoError::Other(format!(
                    "unsupported DTLS version {other}"
                )))
            }
        };
        let keys = Arc::new(KeySlot::default());
        if let Ok(mut last) = self.last_slot.lock() {
            *last = Some(keys.clone());
        }
        Ok(Box::new(Session { dtls, keys }))
    }
}

/// One session's DTLS: dimpl's state machine behind str0m's trait, keeping a copy of the
/// SRTP keys it exports.
struct Session {
    dtls: dimpl::Dtls,
    keys: Arc<KeySlot>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dtls::Session")
    }
}

impl DtlsInstance for Session {
    fn set_active(&mut self, active: bool) {
        self.dtls.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.dtls.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.dtls.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &out {
            self.keys.put(SrtpKeys {
                material: material.as_ref().to_vec(),
                profile: *profile,
                active: self.dtls.is_active(),
            });
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.dtls.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.dtls.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.dtls.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.dtls.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.dtls.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.dtls.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.dtls.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // a start time for the DTLS state machines
    fn sessions_share_one_config_per_mtu() {
        let shared = SharedDtls::new(str0m::crypto::from_feature_flags().dtls_provider);
        let cert = shared.generate_certificate().expect("a certificate");
        let now = Instant::now();
        for _ in 0..3 {
            shared
                .new_dtls(&cert, now, DtlsVersion::Auto, Some(1150))
                .expect("a session");
        }
        shared
            .new_dtls(&cert, now, DtlsVersion::Dtls12, Some(1151))
            .expect("a session");
        let configs = shared.configs.lock().unwrap();
        assert_eq!(configs.len(), 2, "{} configs", configs.len());
        assert_eq!(configs.iter().filter(|(m, _)| *m == Some(1150)).count(), 1);
        assert_eq!(configs.iter().filter(|(m, _)| *m == Some(1151)).count(), 1);
    }
}
