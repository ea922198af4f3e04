//! Kafka's default key partitioner: the Java client's `Utils.murmur2` and `toPositive`, bit for bit.
//!
//! Both backends must put a key in the same partition, so this is a port of
//! `org.apache.kafka.common.utils.Utils.murmur2` (MurmurHash2, 32-bit, seed `0x9747b28c`, with Java's
//! wrapping `int` arithmetic and logical shifts `>>>`), not a general MurmurHash2 implementation.

const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// Kafka's `Utils.murmur2(byte[])`, returned as the same 32 bits (cast to `i32` to compare with Java).
pub fn murmur2(data: &[u8]) -> u32 {
    // Java computes `seed ^ length` on ints; lengths above i32::MAX cannot exist there.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    // Java's switch falls through from case 3 to case 1; the multiply happens once if any tail byte.
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(h: u32) -> u32 {
    h & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a non-null key:
/// `toPositive(murmur2(key)) % partitions`. `partitions` must be non-zero.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0);
    to_positive(murmur2(key)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Apache Kafka's `UtilsTest.testMurmur2` (Java signed ints).
    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input) as i32, expected, "murmur2({input:?})");
        }
    }

    /// Vectors librdkafka pins for its `murmur2` partitioner (rdmurmur2.c unit test), which cover
    /// every tail length; written as the Java-int results.
    #[test]
    fn murmur2_matches_librdkafka_vectors() {
        let cases: [(&[u8], u32); 5] = [
            (b"kafka", 0xd067_cf64),
            (b"giberish123456789", 0x8f55_2b0c),
            (b"1234", 0x9fc9_7b14),
            (b"234", 0xe7c0_09ca),
            (b"34", 0x8739_30da),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn partition_is_positive_hash_modulo_count() {
        // foobar hashes to a negative Java int; toPositive must clear the sign bit, not negate.
        let h = -790_332_482_i32;
        let expected = ((h & 0x7fff_ffff) as u32) % 50;
        assert_eq!(expected, 16);
        assert_eq!(partition_for_key(b"foobar", 50), expected);
        for n in 1..=64u32 {
            for key in [&b"21"[..], b"abc", b"", b"machine-017"] {
                let p = partition_for_key(key, n);
                assert!(p < n);
                assert_eq!(p, (murmur2(key) & 0x7fff_ffff) % n);
            }
        }
    }
}
