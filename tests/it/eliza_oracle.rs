//! ELIZA against the 1966 program: the engine must give the replies that a faithful
//! re-creation of it (Anthony Hay's anthay/ELIZA, the oracle in ../shared/eliza/oracle)
//! gave to hundreds of generated conversations.
//!
//! The oracle is a tool beside the project, so its replies are recorded in
//! `tests/data/eliza/oracle.tsv` by `tools/eliza-oracle/generate.py` and this test
//! never runs it. Replies are compared without case, without the spacing around
//! punctuation and without the punctuation that ends them (the engine writes
//! sentences: `Go on, please.` for `GO ON , PLEASE`); every word and every symbol
//! inside a reply must be the same. The DOCTOR script here corrects one misprint
//! of 1966, APOLIGIZE.

use futures::StreamExt;

use basic_service::eliza::{Eliza, Script};

use crate::common::{open_talk, say, start, test_config, within};

const RECORDED: &str = include_str!("../data/eliza/oracle.tsv");

/// One recorded conversation.
struct Conversation {
    /// `= conversation N: CLASS` as in the file.
    name: String,
    /// (user line, the oracle's reply)
    turns: Vec<(&'static str, &'static str)>,
}

/// The recorded conversations; `ELIZA_ORACLE_DATA=path` checks another recording
/// instead (e.g. a larger one made with `generate.py --seed N --out path`).
fn recorded() -> Vec<Conversation> {
    let text: &'static str = match std::env::var_os("ELIZA_ORACLE_DATA") {
        Some(path) => {
            String::leak(std::fs::read_to_string(&path).expect("ELIZA_ORACLE_DATA is readable"))
        }
        None => RECORDED,
    };
    let mut conversations: Vec<Conversation> = Vec::new();
    for line in text.lines() {
        if let Some((said, reply)) = line.split_once('\t') {
            conversations
                .last_mut()
                .expect("a conversation header before the first turn")
                .turns
                .push((said, reply));
        } else if let Some(name) = line.strip_prefix("= ") {
            // A header has no TAB, a turn always has one.
            conversations.push(Conversation {
                name: name.to_owned(),
                turns: Vec::new(),
            });
        }
    }
    conversations
}

/// A reply with case, closing punctuation and spacing around punctuation taken out.
fn canonical(reply: &str) -> String {
    let upper = reply.to_uppercase().replace("APOLIGIZE", "APOLOGIZE");
    let trimmed = upper.trim_end_matches(|c: char| c.is_whitespace() || ",.;:!?-".contains(c));
    let chars: Vec<char> = trimmed
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    let mut out = String::with_capacity(trimmed.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + 1);
            if !(before.is_some_and(|c| c.is_alphanumeric())
                && after.is_some_and(|c| c.is_alphanumeric()))
            {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// A difference between the engine and the oracle.
struct Difference {
    conversation: String,
    turn: usize,
    said: &'static str,
    oracle: &'static str,
    engine: String,
}

#[test]
fn the_canonical_form_ignores_only_case_and_punctuation_spacing() {
    assert_eq!(canonical("Go on, please."), canonical("GO ON , PLEASE"));
    assert_eq!(
        canonical("What does 'flying high' suggest to you?"),
        canonical("WHAT DOES ' FLYING HIGH ' SUGGEST TO YOU")
    );
    assert_eq!(
        canonical("Please don't apologize."),
        canonical("PLEASE DON'T APOLIGIZE")
    );
    assert_ne!(canonical("Your (computers)."), canonical("YOUR COMPUTERS"));
    assert_ne!(canonical("Your car is red."), canonical("YOUR CARIS RED"));
    assert_ne!(canonical("Why do you ask?"), canonical("WHY DO YOU ASK ME"));
}

#[test]
fn every_recorded_conversation_gets_the_oracles_replies() {
    let conversations = recorded();
    let lines: usize = conversations.iter().map(|c| c.turns.len()).sum();
    // The data is what makes this test mean something: refuse a truncated file.
    assert!(
        conversations.len() >= 400,
        "{} conversations",
        conversations.len()
    );
    assert!(lines >= 8000, "{lines} lines");

    let script = Script::doctor();
    let mut differences = Vec::new();
    let mut agreeing_lines = 0;
    let mut agreeing_conversations = 0;
    // Per class: (lines, agreeing lines, conversations, agreeing conversations).
    let mut classes: Vec<(&str, [usize; 4])> = Vec::new();
    for conversation in &conversations {
        let mut eliza = Eliza::new(script.clone());
        let mut all_agree = true;
        let before = (agreeing_lines, differences.len());
        for (turn, &(said, oracle)) in conversation.turns.iter().enumerate() {
            let reply = eliza.reply(said);
            assert!(
                !reply.goodbye,
                "{}: recorded line {said:?} is a goodbye, which ends a conversation; \
                 fix the generator",
                conversation.name
            );
            if canonical(&reply.text) == canonical(oracle) {
                agreeing_lines += 1;
            } else {
                all_agree = false;
                differences.push(Difference {
                    conversation: conversation.name.clone(),
                    turn: turn + 1,
                    said,
                    oracle,
                    engine: reply.text,
                });
            }
        }
        agreeing_conversations += usize::from(all_agree);
        let class = conversation.name.rsplit(": ").next().unwrap_or_default();
        let at = match classes.iter().position(|(name, _)| *name == class) {
            Some(at) => at,
            None => {
                classes.push((class, [0; 4]));
                classes.len() - 1
            }
        };
        let counts = &mut classes[at].1;
        counts[0] += conversation.turns.len();
        counts[1] += agreeing_lines - before.0;
        counts[2] += 1;
        counts[3] += usize::from(all_agree);
        debug_assert_eq!(
            conversation.turns.len(),
            agreeing_lines - before.0 + differences.len() - before.1
        );
    }
    println!(
        "ELIZA vs the 1966 oracle: {agreeing_lines}/{lines} lines ({:.1} %), \
         {agreeing_conversations}/{} whole conversations agree",
        100.0 * agreeing_lines as f64 / lines as f64,
        conversations.len()
    );
    for (class, [lines, agreeing, count, whole]) in &classes {
        println!("  {class}: {agreeing}/{lines} lines, {whole}/{count} conversations");
    }
    let shown: Vec<String> = differences
        .iter()
        .take(40)
        .map(|d| {
            format!(
                "{} turn {}: {:?}\n    oracle: {}\n    engine: {}",
                d.conversation, d.turn, d.said, d.oracle, d.engine
            )
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {lines} replies differ from the oracle's; the first ones:\n{}",
        differences.len(),
        shown.join("\n")
    );
}

#[tokio::test]
async fn recorded_conversations_over_talk_streams_get_the_oracles_replies() {
    // One conversation of each class, each on its own stream of a real server.
    let conversations = recorded();
    let mut classes = Vec::new();
    let picked: Vec<&Conversation> = conversations
        .iter()
        .filter(|c| {
            let class = c.name.rsplit(": ").next().unwrap_or_default().to_owned();
            let new = !classes.contains(&class);
            classes.push(class);
            new
        })
        .collect();
    assert!(picked.len() >= 6, "{} classes", picked.len());
    let server = start(test_config()).await;
    let client = server.client();
    for conversation in picked {
        let (tx, mut replies) = open_talk(&client, 1).await;
        for &(said, oracle) in &conversation.turns {
            tx.send(say(said)).await.expect("stream open");
            let reply = within(replies.next()).await.expect("a reply").expect("OK");
            assert_eq!(
                canonical(&reply.answer),
                canonical(oracle),
                "{}: after {said:?}",
                conversation.name
            );
        }
        drop(tx);
        assert!(
            within(replies.next()).await.is_none(),
            "ends after half-close"
        );
    }
    server.stop().await;
}
