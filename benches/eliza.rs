//! Benchmarks for the ELIZA engine: replies on the 1966 sample conversation, and
//! parsing the embedded DOCTOR script.
//!
//! Run with `cargo bench --bench eliza`.

use std::hint::black_box;
use std::sync::Arc;

use basic_service::eliza::{Eliza, Script};
use criterion::{Criterion, criterion_group, criterion_main};

/// The sample conversation from Weizenbaum's paper: user line, tab, reply.
const CONVERSATION: &str = include_str!("../src/service/eliza/testdata/cacm-1966-conversation.tsv");

/// The DOCTOR script text, as `Script::doctor` embeds it.
const DOCTOR: &str = include_str!("../src/service/eliza/doctor.script");

/// The user's side of the sample conversation: 15 typical lines.
fn user_lines() -> Vec<&'static str> {
    CONVERSATION
        .lines()
        .filter_map(|line| line.split('\t').next())
        .filter(|line| !line.trim().is_empty())
        .collect()
}

fn replies(c: &mut Criterion) {
    let script = Script::doctor();
    let lines = user_lines();

    // One long conversation: cycling, memory and LIMIT keep moving.
    let mut eliza = Eliza::new(Arc::clone(&script));
    let mut next = lines.iter().cycle();
    c.bench_function("eliza/reply (1966 lines in a loop)", |b| {
        b.iter(|| {
            let line = next.next().copied().unwrap_or_default();
            black_box(eliza.reply(black_box(line)))
        })
    });

    // A whole fresh conversation: setup plus all 15 replies.
    c.bench_function("eliza/fresh conversation (15 replies)", |b| {
        b.iter(|| {
            let mut eliza = Eliza::new(Arc::clone(&script));
            for line in &lines {
                black_box(eliza.reply(black_box(line)));
            }
        })
    });
}

fn parse(c: &mut Criterion) {
    c.bench_function("eliza/Script::parse (DOCTOR)", |b| {
        b.iter(|| black_box(Script::parse(black_box(DOCTOR))))
    });
}

criterion_group!(benches, replies, parse);
criterion_main!(benches);
