//! Argon2id key derivation for key slots: parameters, the floor they never go below, calibration.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::VaultError;

/// RFC 9106 §4, second recommended option: 64 MiB of memory, 3 passes, 4 lanes.
pub const FLOOR_MEMORY_KIB: u32 = 64 * 1024;
pub const FLOOR_ITERATIONS: u32 = 3;
pub const FLOOR_PARALLELISM: u32 = 4;
/// Calibration raises memory first (it is what makes GPU guessing expensive), up to this much,
/// then passes.
const MAX_CALIBRATED_MEMORY_KIB: u32 = 256 * 1024;
/// How long one derivation should take on this machine unless configured otherwise.
pub const DEFAULT_TARGET: Duration = Duration::from_millis(500);
/// Salt length in bytes (RFC 9106 recommends 16).
pub const SALT_LEN: usize = 16;
/// Length of the derived key-encryption key.
pub const KEK_LEN: usize = 32;

/// Argon2id cost parameters, stored in each slot beside its salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The floor: RFC 9106's second recommended option.
    pub const FLOOR: KdfParams = KdfParams {
        memory_kib: FLOOR_MEMORY_KIB,
        iterations: FLOOR_ITERATIONS,
        parallelism: FLOOR_PARALLELISM,
    };

    /// True when these parameters are at least as costly as the floor in every dimension.
    pub fn meets_floor(&self) -> bool {
        self.memory_kib >= FLOOR_MEMORY_KIB
            && self.iterations >= FLOOR_ITERATIONS
            && self.parallelism >= FLOOR_PARALLELISM
    }

    /// Derives a key-encryption key from `secret` and `salt`.
    pub(crate) fn derive(
        &self,
        secret: &[u8],
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; KEK_LEN]>, VaultError> {
        let params = Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(KEK_LEN),
        )
        .map_err(|_| VaultError::SlotFileInvalid("key slot has impossible KDF parameters"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; KEK_LEN]);
        argon
            .hash_password_into(secret, salt, out.as_mut())
            .map_err(|_| VaultError::SlotFileInvalid("key slot has impossible KDF parameters"))?;
        Ok(out)
    }

    /// Checks parameters read from a slot file before spending time on them: a slot weaker
    /// than the floor was not written by a production build and is refused; absurdly large
    /// ones are refused so a tampered file cannot exhaust memory.
    pub(crate) fn check_readable(&self) -> Result<(), VaultError> {
        if self.memory_kib > 4 * 1024 * 1024 || self.iterations > 1000 || self.parallelism > 64 {
            return Err(VaultError::SlotFileInvalid(
                "key slot KDF parameters are out of range",
            ));
        }
        if !self.meets_floor() && !cfg!(any(test, feature = "insecure-test-kdf")) {
            return Err(VaultError::WeakSlot);
        }
        Ok(())
    }
}

/// How new slots choose their Argon2id parameters.
#[derive(Clone, Debug)]
pub struct KdfPolicy {
    kind: PolicyKind,
}

#[derive(Clone, Debug)]
enum PolicyKind {
    Calibrated {
        target: Duration,
    },
    #[cfg(any(test, feature = "insecure-test-kdf"))]
    InsecureFast,
}

impl Default for KdfPolicy {
    fn default() -> Self {
        Self::calibrated(DEFAULT_TARGET)
    }
}

impl KdfPolicy {
    /// Measure this machine and pick parameters so one derivation takes about `target`,
    /// never below [`KdfParams::FLOOR`] however short the target.
    pub fn calibrated(target: Duration) -> Self {
        Self {
            kind: PolicyKind::Calibrated { target },
        }
    }

    /// Tiny parameters for fast test suites. Only test builds have this constructor, and only
    /// test builds open the slots it makes, so a real vault can never be weakened by it.
    #[cfg(any(test, feature = "insecure-test-kdf"))]
    pub fn insecure_fast_for_tests() -> Self {
        Self {
            kind: PolicyKind::InsecureFast,
        }
    }

    /// The parameters a new slot gets under this policy.
    pub fn params(&self) -> Result<KdfParams, VaultError> {
        match &self.kind {
            PolicyKind::Calibrated { target } => calibrate(*target),
            #[cfg(any(test, feature = "insecure-test-kdf"))]
            PolicyKind::InsecureFast => Ok(KdfParams {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            }),
        }
    }
}

/// Times one derivation at the floor and scales memory, then passes, to reach `target`.
/// Cost grows about linearly in memory × passes, which is what the scaling assumes.
fn calibrate(target: Duration) -> Result<KdfParams, VaultError> {
    let floor = KdfParams::FLOOR;
    let started = Instant::now();
    floor.derive(b"chartroom calibration", &[0u8; SALT_LEN])?;
    let at_floor = started.elapsed().max(Duration::from_millis(1));
    let factor = target.as_secs_f64() / at_floor.as_secs_f64();
    if factor <= 1.0 {
        return Ok(floor);
    }
    let budget = f64::from(floor.memory_kib) * f64::from(floor.iterations) * factor;
    let memory_kib = ((f64::from(floor.memory_kib) * factor) as u32)
        .clamp(FLOOR_MEMORY_KIB, MAX_CALIBRATED_MEMORY_KIB)
        / 1024
        * 1024;
    let iterations = ((budget / f64::from(memory_kib)).round() as u32).max(FLOOR_ITERATIONS);
    Ok(KdfParams {
        memory_kib,
        iterations,
        parallelism: floor.parallelism,
    })
}

/// How long one derivation with `params` takes here (used by the benchmark and `vault info`).
pub fn time_derivation(params: &KdfParams) -> Result<Duration, VaultError> {
    let started = Instant::now();
    params.derive(b"timing", &[0u8; SALT_LEN])?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_never_goes_below_the_floor() {
        let params = KdfPolicy::calibrated(Duration::from_millis(1))
            .params()
            .expect("calibrates");
        assert_eq!(params, KdfParams::FLOOR);
        assert!(params.meets_floor());
    }

    #[test]
    fn calibration_scales_up_for_a_longer_target() {
        let params = KdfPolicy::calibrated(Duration::from_secs(2))
            .params()
            .expect("calibrates");
        assert!(params.meets_floor());
        let cost = u64::from(params.memory_kib) * u64::from(params.iterations);
        let floor_cost = u64::from(FLOOR_MEMORY_KIB) * u64::from(FLOOR_ITERATIONS);
        assert!(
            cost > floor_cost,
            "{params:?} is no costlier than the floor"
        );
    }

    #[test]
    fn absurd_parameters_from_a_file_are_refused() {
        let absurd = KdfParams {
            memory_kib: u32::MAX,
            iterations: 3,
            parallelism: 4,
        };
        assert!(absurd.check_readable().is_err());
    }

    #[test]
    fn derivation_is_deterministic_and_salted() {
        let p = KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        let a = p.derive(b"pw", &[1; SALT_LEN]).expect("derives");
        let b = p.derive(b"pw", &[1; SALT_LEN]).expect("derives");
        let c = p.derive(b"pw", &[2; SALT_LEN]).expect("derives");
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
    }
}
