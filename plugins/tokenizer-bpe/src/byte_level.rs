//! GPT-2's reversible byte ↔ printable-character mapping used by byte-level BPE.

use std::sync::OnceLock;

fn tables() -> &'static ([char; 256], std::collections::HashMap<char, u8>) {
    static T: OnceLock<([char; 256], std::collections::HashMap<char, u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
        printable.extend(0xA1..=0xAC);
        printable.extend(0xAE..=0xFF);
        let mut map = ['\0'; 256];
        let mut next = 256;
        for b in 0..256u32 {
            let c = if printable.contains(&b) {
                b
            } else {
                next += 1;
                next - 1
            };
            map[b as usize] = char::from_u32(c).expect("valid code point");
        }
        let rev = map.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        (map, rev)
    })
}

/// Maps raw bytes to the byte-level alphabet.
pub fn encode(bytes: &[u8]) -> String {
    let (map, _) = tables();
    bytes.iter().map(|&b| map[b as usize]).collect()
}

/// Maps byte-level text back to bytes; characters outside the alphabet keep their UTF-8.
pub fn decode(text: &str) -> Vec<u8> {
    let (_, rev) = tables();
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match rev.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&all)), all);
        assert_eq!(super::encode(b" "), "Ġ");
        assert_eq!(super::encode(b"\n"), "Ċ");
    }
}
