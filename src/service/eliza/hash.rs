//! The hash the 1966 ELIZA used to choose a MEMORY transformation.
//!
//! Weizenbaum's paper says the choice is random; the MAD-SLIP source hashes the
//! last word of the input instead, and the sample conversation in the paper only
//! comes out right with that hash. The word is read as IBM 7094 Hollerith (BCD)
//! characters, six to a 36-bit machine word.

/// The 6-bit BCD character set in code order 00..77 (octal); `_` marks unused codes.
const BCD: &[u8; 64] = b"0123456789_='___+ABCDEFGHI_.)___-JKLMNOPQR_$*___ /STUVWXYZ_,(___";

/// The BCD code of byte `b`; bytes outside the set keep their own low 6 bits.
fn bcd(b: u8) -> u64 {
    let code = Some(b)
        .filter(|&b| b != b'_')
        .and_then(|b| BCD.iter().position(|&x| x == b));
    match code {
        Some(i) => i as u64,
        None => u64::from(b & 0o77),
    }
}

/// The last six-byte chunk of `word`, space padded and packed into 36 bits.
///
/// The 7094 stored a long word as consecutive machine words of six characters;
/// the hash only ever saw the last one. A word beyond ASCII is cut into bytes of
/// its UTF-8 form, as the re-creation the engine is tested against does.
pub(crate) fn last_chunk(word: &str) -> u64 {
    let bytes = word.as_bytes();
    let start = bytes.len().saturating_sub(1) / 6 * 6;
    let mut packed = 0;
    let mut taken = 0;
    for &b in bytes.get(start..).unwrap_or_default() {
        packed = (packed << 6) | bcd(b);
        taken += 1;
    }
    for _ in taken..6 {
        packed = (packed << 6) | bcd(b' ');
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
        assert_eq!(bcd(b'_'), u64::from(b'_') & 0o77);
        assert_eq!(bcd(b'\''), 0o14);
        assert_eq!(bcd(b'('), 0o74);
        assert_eq!(bcd(0xC3), 0xC3 & 0o77);
    }

    #[test]
    fn words_beyond_ascii_are_hashed_as_utf8_bytes() {
        // "CAFÉ" is five bytes (É is C3 89), padded with one space.
        let expected = [b'C', b'A', b'F', 0xC3, 0x89, b' ']
            .iter()
            .fold(0, |packed, &b| (packed << 6) | bcd(b));
        assert_eq!(last_chunk("CAF\u{C9}"), expected);
        // "ABCDEÉ" is six characters but seven bytes: the last chunk is the last byte.
        assert_eq!(
            last_chunk("ABCDE\u{C9}"),
            ((0x89 & 0o77) << 30) | 0o60_60_60_60_60
        );
    }
}
