//! Random scenarios through the simulated server: the same seed gives the same transcript, and
//! the server never misbehaves (no message to a closed connection, valid JSON only, idle after
//! every client has gone).
//!
//! `SIM_SEED=n` replays one seed; `SIM_SCENARIOS=n` changes how many seeds run.

use antenna_tests::scenario::run_random;
use antenna_tests::Sim;
use std::time::Duration;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run(seed: u64) -> (String, u64) {
    let mut sim = Sim::new(seed);
    let stats = run_random(&mut sim, seed, 300, 6);
    assert_eq!(
        sim.open_conns().count(),
        0,
        "seed {seed}: connections left open"
    );
    // Idle: nothing more is said to anybody, however long we wait.
    let before = sim.records().len();
    sim.advance(Duration::from_secs(120));
    assert_eq!(
        sim.records().len(),
        before,
        "seed {seed}: server spoke after everyone left"
    );
    assert_eq!(
        sim.node.sig.poll_timeout(),
        None,
        "seed {seed}: signalling still has timers with no connections"
    );
    (sim.masked_transcript(), stats.steps)
}

#[test]
fn same_seed_same_transcript() {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("SIM_SCENARIOS").unwrap_or(40)).collect(),
    };
    let mut steps = 0;
    for &seed in &seeds {
        let (a, n) = run(seed);
        let (b, _) = run(seed);
        if a != b {
            let diff = a
                .lines()
                .zip(b.lines())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "seed {seed}: transcripts differ at line {diff}:\n{}\n{}",
                a.lines().nth(diff).unwrap_or(""),
                b.lines().nth(diff).unwrap_or("")
            );
        }
        steps += n;
    }
    println!(
        "sim: {} scenarios (each run twice), {steps} steps per pass, transcripts identical",
        seeds.len()
    );
}

#[test]
fn different_seeds_differ() {
    assert_ne!(run(1).0, run(2).0);
}
