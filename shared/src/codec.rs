//! Lower-case Crockford base32: URL-safe, case-insensitive-looking, no
//! punctuation, so a token string selects with one double-click and matches
//! `[0-9a-z]` in secret scanners.

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Characters needed to encode `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

pub fn encode_into(bytes: &[u8], out: &mut String) {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
}

pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(encoded_len(bytes.len()));
    encode_into(bytes, &mut s);
    s
}

/// Whether `c` is a character of the alphabet.
pub fn is_alphabet(c: u8) -> bool {
    value(c).is_some()
}

fn value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'a'..=b'h' => Some(u32::from(c - b'a') + 10),
        b'j' | b'k' => Some(u32::from(c - b'j') + 18),
        b'm' | b'n' => Some(u32::from(c - b'm') + 20),
        b'p'..=b't' => Some(u32::from(c - b'p') + 22),
        b'v'..=b'z' => Some(u32::from(c - b'v') + 27),
        _ => None,
    }
}

/// Decodes exactly `N` bytes; refuses other lengths, foreign characters and
/// non-zero padding bits, so every byte string has exactly one encoding.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != encoded_len(N) {
        return None;
    }
    let mut out = [0u8; N];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut i = 0;
    for &c in text.as_bytes() {
        acc = (acc << 5) | value(c)?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            if i < N {
                out[i] = (acc >> bits) as u8;
                i += 1;
            }
            acc &= (1 << bits) - 1;
        }
    }
    (i == N && acc == 0).then_some(out)
}

/// Decodes any length (cursors), in 5-byte blocks of the fixed decoder.
pub fn decode_vec(text: &str) -> Option<Vec<u8>> {
    if !text.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    for chunk in text.as_bytes().chunks(8) {
        let s = std::str::from_utf8(chunk).ok()?;
        match chunk.len() {
            8 => out.extend_from_slice(&decode::<5>(s)?),
            7 => out.extend_from_slice(&decode::<4>(s)?),
            5 => out.extend_from_slice(&decode::<3>(s)?),
            4 => out.extend_from_slice(&decode::<2>(s)?),
            2 => out.extend_from_slice(&decode::<1>(s)?),
            _ => return None,
        }
    }
    Some(out)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not recoverable for a token service: minting with
    // a weak secret would be worse than aborting the request.
    getrandom::getrandom(&mut b).expect("operating system random source unavailable");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_all_lengths() {
        let data: Vec<u8> = (0..=255u8).collect();
        let e = encode(&data[..16]);
        assert_eq!(e.len(), 26);
        assert_eq!(decode::<16>(&e).unwrap(), data[..16]);
        let e = encode(&data[..32]);
        assert_eq!(e.len(), 52);
        assert_eq!(decode::<32>(&e).unwrap()[..], data[..32]);
    }

    #[test]
    fn refuses_bad_input() {
        let good = encode(&[0xff; 16]);
        assert!(decode::<16>(&good).is_some());
        assert!(decode::<16>(&good[..25]).is_none());
        assert!(decode::<16>(&good.to_uppercase()).is_none());
        let mut bad = good.clone();
        bad.replace_range(0..1, "u");
        assert!(decode::<16>(&bad).is_none(), "u is not in the alphabet");
        // Last char carries 2 padding bits that must be zero.
        let mut noncanon = good.clone();
        noncanon.replace_range(25..26, "z");
        assert!(decode::<16>(&noncanon).is_none());
    }
}
