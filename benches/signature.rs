//! Micro-benchmarks of the ReadMe signature: header parsing, verification
//! (one secret, two secrets during a rotation, a forged tag) and signing.
//!
//! `scripts/bench` runs these with `--output-format bencher` and prints one
//! line per benchmark; `cargo bench --bench signature` gives criterion's full
//! report.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keyhook::readme::signature::{parse_header, sign, Verifier};
use keyhook::secret::Redacted;

const T: i64 = 1_700_000_000_000;
const BODY: &[u8] = br#"{"email":"dev@corp.com"}"#;

fn verifier(secrets: &[&str]) -> Verifier {
    Verifier::new(
        secrets
            .iter()
            .map(|s| Redacted::new((*s).to_string()))
            .collect(),
        1800,
    )
}

fn signature(c: &mut Criterion) {
    let header = sign("s3cret", T, BODY);
    let forged = format!("t={T},v0={}", "0".repeat(64));
    let one = verifier(&["s3cret"]);
    let rotating = verifier(&["n3w-s3cret", "s3cret"]);

    c.bench_function("signature/parse_header", |b| {
        b.iter(|| parse_header(black_box(&header)))
    });
    c.bench_function("signature/verify_valid_1_secret", |b| {
        b.iter(|| one.verify(black_box(Some(header.as_str())), black_box(BODY), T))
    });
    c.bench_function("signature/verify_valid_2_secrets", |b| {
        b.iter(|| rotating.verify(black_box(Some(header.as_str())), black_box(BODY), T))
    });
    c.bench_function("signature/verify_forged", |b| {
        b.iter(|| one.verify(black_box(Some(forged.as_str())), black_box(BODY), T))
    });
    c.bench_function("signature/sign", |b| {
        b.iter(|| sign(black_box("s3cret"), T, black_box(BODY)))
    });
}

criterion_group!(benches, signature);
criterion_main!(benches);
