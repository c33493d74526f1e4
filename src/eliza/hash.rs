//! The hash the 1966 ELIZA used to choose a MEMORY transformation.
//!
//! Weizenbaum's paper says the choice is random; the MAD-SLIP source hashes the
//! last word of the input instead, and the sample conversation in the paper only
//! comes out right with that hash. The word is read as IBM 7094 Hollerith (BCD)
//! characters, six to a 36-bit machine word.

/// The 6-bit BCD character set in code order 00..77 (octal); `_` marks unused codes.
const BCD: &[u8; 64] = b"0123456789_='___+ABCDEFGHI_.)___-JKLMNOPQR_$*___ /STUVWXYZ_,(___";

/// The BCD code of `c`; characters outside the set keep their own low 6 bits.
fn bcd(c: char) -> u64 {
    let code = u8::try_from(c)
        .ok()
        .filter(|&b| b != b'_')
        .and_then(|b| BCD.iter().position(|&x| x == b));
    match code {
        Some(i) => i as u64,
        None => u64::from(c) & 0o77,
    }
}

/// The last six-character chunk of `word`, space padded and packed into 36 bits.
///
/// The 7094 stored a long word as consecutive machine words of six characters;
/// the hash only ever saw the last one.
pub(crate) fn last_chunk(word: &str) -> u64 {
    let len = word.chars().count();
    let start = len.saturating_sub(1) / 6 * 6;
    let mut packed = 0;
    let mut taken = 0;
    for c in word.chars().skip(start) {
        packed = (packed << 6) | bcd(c);
        taken += 1;
    }
    for _ in taken..6 {
        packed = (packed << 6) | bcd(' ');
    }
    packed
}

/// The middle `bits` bits of the square of the low 35 bits of `d` (SLIP's HASH).
pub(crate) fn hash(d: u64, bits: u32) -> u64 {
    let d = d & ((1 << 35) - 1);
    let square = d.wrapping_mul(d);
    (square >> (35 - bits / 2)) & ((1 << bits) - 1)
}

/// Which of the four MEMORY transformations the 1966 program applied after `word`.
pub(crate) fn memory_choice(word: &str) -> usize {
    // Two bits: always 0..=3.
    hash(last_chunk(word), 2) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_choice_matches_the_published_check_values() {
        assert_eq!(memory_choice("PURPOSE"), 1);
        assert_eq!(memory_choice("DEVONSHIRE"), 0);
        assert_eq!(memory_choice("PREDICAMENT"), 3);
        assert_eq!(memory_choice("EXECUTIONERS"), 3);
        assert_eq!(memory_choice("GLOUCESTERSHIRE"), 2);
    }

    #[test]
    fn the_sample_conversation_remembers_with_the_fourth_form() {
        assert_eq!(memory_choice("HERE"), 3);
    }

    #[test]
    fn last_chunk_packs_space_padded_bcd_codes() {
        // "A" is 021 and space is 060.
        assert_eq!(last_chunk("A"), 0o21_60_60_60_60_60);
        // Seven characters: only the seventh is left in the last chunk.
        assert_eq!(last_chunk("ABCDEFA"), 0o21_60_60_60_60_60);
        assert_eq!(last_chunk(""), 0o60_60_60_60_60_60);
    }

    #[test]
    fn characters_outside_the_set_keep_their_low_six_bits() {
        assert_eq!(bcd('_'), u64::from(b'_') & 0o77);
        assert_eq!(bcd('é'), u64::from('é') & 0o77);
        assert_eq!(bcd('\''), 0o14);
        assert_eq!(bcd('('), 0o74);
    }
}
