//! The fuzz targets' seeds for the collector's bodies (fuzz/corpus/push and enroll) are real,
//! signed batches: this test checks that they still parse and pass every check, so a format
//! change cannot leave the fuzzer starting from inputs that fail at the first step.
//! `UPDATE_SEEDS=1 cargo test -p chartroom-audit --test fuzz_seeds` writes them afresh.

use std::path::PathBuf;

use chartroom_audit::sync::{
    check_batch, validate_enroll, validate_push, EnrollRequest, PushBatch, SecurityLogHead,
};
use chartroom_audit::testing::{chart_read, seal_all};
use chartroom_audit::{Checkpoint, SigningKey, GENESIS};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    // The key the push target checks signatures with.
    let key = SigningKey::from_bytes(&[7; 32]);
    let batch = |n: u64, log: bool| {
        let records = seal_all(
            GENESIS,
            (1..=n).map(|seq| chart_read(seq, "desk-1", seq % 5, Some("3 results"))),
        );
        let last = records.last().expect("some");
        let checkpoints = vec![Checkpoint::sign(
            &key,
            "desk-1",
            last.entry.seq,
            last.hash,
            last.entry.time,
        )];
        let b = PushBatch {
            device_id: "desk-1".into(),
            records,
            checkpoints,
            security_log: log.then(|| SecurityLogHead {
                entries: 4,
                hash: "ab".repeat(32),
                at_known: Some((1, "cd".repeat(32))),
            }),
            epoch_start: None,
        };
        serde_json::to_vec_pretty(&b).expect("json")
    };
    let enroll = EnrollRequest {
        token: "0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        device_id: "desk-1".into(),
        public_key: hex::encode(key.verifying_key().as_bytes()),
        label: Some("front desk PC".into()),
    };
    vec![
        ("push", "seed-one-record", batch(1, false)),
        ("push", "seed-five-records-with-log", batch(5, true)),
        (
            "enroll",
            "seed-0",
            serde_json::to_vec(&enroll).expect("json"),
        ),
    ]
}

#[test]
fn the_collector_body_seeds_are_real_and_pass_every_check() {
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    for (target, name, bytes) in seeds() {
        let path = corpus(target).join(name);
        if std::env::var_os("UPDATE_SEEDS").is_some() {
            std::fs::create_dir_all(corpus(target)).expect("mkdir");
            std::fs::write(&path, &bytes).expect("writes");
        }
        let stored = std::fs::read(&path)
            .unwrap_or_else(|_| panic!("{} is missing: UPDATE_SEEDS=1 writes it", path.display()));
        match target {
            "push" => {
                let b: PushBatch = serde_json::from_slice(&stored).expect("a push body");
                validate_push(&b).expect("its shape");
                check_batch(&b, &key).expect("signed and chained");
            }
            _ => {
                let r: EnrollRequest = serde_json::from_slice(&stored).expect("an enroll body");
                validate_enroll(&r).expect("its shape");
            }
        }
    }
}
