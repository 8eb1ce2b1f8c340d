//! RFC 6962 / RFC 9162 Merkle trees over SHA-256 (DESIGN §3).

use rs_merkle::{Hasher, MerkleTree};
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// rs_merkle hasher whose interior nodes are SHA-256(0x01 || left || right); an odd node is
/// carried up unchanged, which yields exactly the RFC 6962 tree shape.
#[derive(Clone, Debug)]
pub struct Rfc6962Hasher;

impl Hasher for Rfc6962Hasher {
    type Hash = Hash;

    fn hash(data: &[u8]) -> Hash {
        Sha256::digest(data).into()
    }

    fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
        match right {
            Some(right) => node_hash(left, right),
            None => *left,
        }
    }

    fn hash_size() -> usize {
        32
    }
}

/// SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// SHA-256 of the empty string: the root of an empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Root of the tree over already-hashed leaves, computed with rs_merkle.
pub fn root(leaf_hashes: &[Hash]) -> Hash {
    if leaf_hashes.is_empty() {
        return empty_root();
    }
    MerkleTree::<Rfc6962Hasher>::from_leaves(leaf_hashes).root().unwrap_or_else(empty_root)
}

/// The RFC 6962 definition, recursively: split at the largest power of two smaller than n.
/// Kept as an independent reference for tests and for the verifier's cross-check.
pub fn root_recursive(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => empty_root(),
        1 => leaf_hashes[0],
        n => {
            let split = largest_power_of_two_below(n);
            node_hash(&root_recursive(&leaf_hashes[..split]), &root_recursive(&leaf_hashes[split..]))
        }
    }
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
pub fn largest_power_of_two_below(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points() {
        assert_eq!(largest_power_of_two_below(2), 1);
        assert_eq!(largest_power_of_two_below(3), 2);
        assert_eq!(largest_power_of_two_below(4), 2);
        assert_eq!(largest_power_of_two_below(5), 4);
        assert_eq!(largest_power_of_two_below(1025), 1024);
    }

    #[test]
    fn rs_merkle_matches_recursive_reference_for_sizes_0_to_1000() {
        let leaves: Vec<Hash> = (0u32..1000).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 0..=leaves.len() {
            assert_eq!(root(&leaves[..size]), root_recursive(&leaves[..size]), "size {size}");
        }
    }
}
