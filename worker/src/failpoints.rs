//! Fault injection for tests of the daemon's side of the protocol.
//!
//! Points exist only in builds with the `failpoints` feature (test builds get
//! it through the crate's dev-dependency on itself; release builds do not, so
//! no point name is in the `kiln-worker` binary). They are armed with the
//! `fail` crate, in-process with `fail::cfg(name, "return")` inside a
//! `fail::FailScenario`, or for a `kiln-worker` process built with the feature
//! with `FAILPOINTS="name=return"` (read by `fail::FailScenario::setup`).
//!
//! | point | armed with `return` |
//! |---|---|
//! | `worker:corrupt-proof` | every proof has a bit flipped before it is reported |
//! | `worker:hang-window-post` | a Window PoSt request is held for ten minutes before it is proved (a hung prover) |

/// Flips a bit of `proof` when the point `worker:corrupt-proof` is armed
/// (`failpoints` builds only; otherwise does nothing).
pub(crate) fn corrupt_proof(proof: &mut [u8]) {
    #[cfg(feature = "failpoints")]
    if !proof.is_empty() && fail::eval("worker:corrupt-proof", |_| ()).is_some() {
        tracing::warn!(
            "fault injection (worker:corrupt-proof): this proof is corrupted before it is reported"
        );
        let i = proof.len() / 2;
        proof[i] ^= 0x01;
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = proof;
}

/// Holds a Window PoSt request for ten minutes when `worker:hang-window-post`
/// is armed (`failpoints` builds only; otherwise returns at once).
pub(crate) fn hang_window_post() {
    #[cfg(feature = "failpoints")]
    if fail::eval("worker:hang-window-post", |_| ()).is_some() {
        tracing::warn!("fault injection (worker:hang-window-post): this Window PoSt hangs");
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::*;

    #[test]
    fn an_armed_corrupt_proof_point_flips_one_bit() {
        let scenario = fail::FailScenario::setup();
        let mut proof = vec![0u8; 192];
        corrupt_proof(&mut proof);
        assert!(proof.iter().all(|&b| b == 0), "not armed: untouched");
        fail::cfg("worker:corrupt-proof", "return").unwrap();
        corrupt_proof(&mut proof);
        assert_eq!(proof.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        assert_eq!(proof[96], 1);
        scenario.teardown();
    }
}
