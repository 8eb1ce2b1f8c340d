//! RFC 6962 / RFC 9162 Merkle trees over SHA-256 (docs/FORMAT.md, Merkle trees).

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("proof has {extra} more path hashes than a tree of this size needs")]
    PathTooLong { extra: usize },
    #[error("proof is missing path hashes for a tree of this size")]
    PathTooShort,
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    #[error("sizes {old} and {new} are not a valid consistency pair (need 1 <= old <= new)")]
    BadSizes { old: u64, new: u64 },
    #[error("consistency proof for equal sizes must be empty and the roots equal")]
    EqualSizesMismatch,
    #[error("multi-proof lists leaf index {index} more than once")]
    DuplicateIndex { index: usize },
    #[error("multi-proof has {indices} indices but {leaves} leaves")]
    CountMismatch { indices: usize, leaves: usize },
}

/// RFC 9162 PATH(m, D[n]): the inclusion path of leaf `index`, leaf side first.
pub fn inclusion_path(leaf_hashes: &[Hash], index: usize) -> Result<Vec<Hash>, ProofError> {
    if index >= leaf_hashes.len() {
        return Err(ProofError::IndexOutOfRange { index: index as u64, size: leaf_hashes.len() as u64 });
    }
    let mut path = Vec::new();
    let (mut leaves, mut index) = (leaf_hashes, index);
    // Walk down from the root, collecting siblings; emitted leaf-first by reversing.
    while leaves.len() > 1 {
        let split = largest_power_of_two_below(leaves.len());
        if index < split {
            path.push(root_recursive(&leaves[split..]));
            leaves = &leaves[..split];
        } else {
            path.push(root_recursive(&leaves[..split]));
            leaves = &leaves[split..];
            index -= split;
        }
    }
    path.reverse();
    Ok(path)
}

/// Every level of a tree, leaves first: paths in O(log n) once built.
#[derive(Debug, Clone)]
pub struct Levels {
    levels: Vec<Vec<Hash>>,
}

impl Levels {
    /// Builds levels bottom-up, carrying an odd last node up unchanged: the RFC 6962 shape.
    pub fn new(leaf_hashes: Vec<Hash>) -> Levels {
        let mut levels = vec![leaf_hashes];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let above = below.chunks(2).map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] }).collect();
            levels.push(above);
        }
        Levels { levels }
    }

    pub fn size(&self) -> usize {
        self.levels[0].len()
    }

    pub fn root(&self) -> Hash {
        self.levels.last().and_then(|top| top.first().copied()).unwrap_or_else(empty_root)
    }

    /// The RFC 9162 inclusion path of leaf `index`: the sibling at each level, skipping levels
    /// where the node is carried up without one.
    pub fn path(&self, index: usize) -> Result<Vec<Hash>, ProofError> {
        if index >= self.size() {
            return Err(ProofError::IndexOutOfRange { index: index as u64, size: self.size() as u64 });
        }
        let mut path = Vec::new();
        let mut position = index;
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(position ^ 1) {
                path.push(*sibling);
            }
            position >>= 1;
        }
        Ok(path)
    }
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is at `index` in the tree of `size` with `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut hash = *leaf;
    for (position, sibling) in path.iter().enumerate() {
        if sn == 0 {
            return Err(ProofError::PathTooLong { extra: path.len() - position });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            hash = node_hash(sibling, &hash);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::PathTooShort);
    }
    if &hash != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 PROOF(m, D[n]): the consistency path from the first `old_size` leaves to all of them.
pub fn consistency_path(leaf_hashes: &[Hash], old_size: usize) -> Result<Vec<Hash>, ProofError> {
    let new_size = leaf_hashes.len();
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes { old: old_size as u64, new: new_size as u64 });
    }
    fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(root_recursive(leaves));
            }
            return;
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            subproof(m, &leaves[..k], complete, out);
            out.push(root_recursive(&leaves[k..]));
        } else {
            subproof(m - k, &leaves[k..], false, out);
            out.push(root_recursive(&leaves[..k]));
        }
    }
    let mut path = Vec::new();
    subproof(old_size, leaf_hashes, true, &mut path);
    Ok(path)
}

/// RFC 9162 §2.1.4.2: checks that the tree of `new_size` with `new_root` extends the tree of
/// `old_size` with `old_root`.
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, path: &[Hash]) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes { old: old_size, new: new_size });
    }
    if old_size == new_size {
        if !path.is_empty() || old_root != new_root {
            return Err(ProofError::EqualSizesMismatch);
        }
        return Ok(());
    }
    let mut path: Vec<Hash> = path.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let Some((first, rest)) = path.split_first() else { return Err(ProofError::PathTooShort) };
    let (mut fr, mut sr) = (*first, *first);
    for (position, c) in rest.iter().enumerate() {
        if sn == 0 {
            return Err(ProofError::PathTooLong { extra: rest.len() - position });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::PathTooShort);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies an rs_merkle multi-proof, rejecting what rs_merkle 1.5 would accept but must not:
/// duplicated or out-of-range indices and mismatched counts (docs/FORMAT.md, Merkle trees).
pub fn verify_multiproof(root: &Hash, indices: &[usize], leaves: &[Hash], size: usize, proof_hashes: &[Hash]) -> Result<(), ProofError> {
    if indices.len() != leaves.len() {
        return Err(ProofError::CountMismatch { indices: indices.len(), leaves: leaves.len() });
    }
    let mut seen = std::collections::HashSet::with_capacity(indices.len());
    for &index in indices {
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index: index as u64, size: size as u64 });
        }
        if !seen.insert(index) {
            return Err(ProofError::DuplicateIndex { index });
        }
    }
    let proof = rs_merkle::MerkleProof::<Rfc6962Hasher>::new(proof_hashes.to_vec());
    if proof.verify(*root, indices, leaves, size) { Ok(()) } else { Err(ProofError::RootMismatch) }
}

/// rs_merkle's multi-proof hashes for `indices` (sorted, distinct) in the tree over `leaf_hashes`.
pub fn multiproof(leaf_hashes: &[Hash], indices: &[usize]) -> Vec<Hash> {
    MerkleTree::<Rfc6962Hasher>::from_leaves(leaf_hashes).proof(indices).proof_hashes().to_vec()
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
    fn every_inclusion_and_consistency_proof_verifies_up_to_size_64_and_corruptions_fail() {
        let leaves: Vec<Hash> = (0u32..64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 1..=leaves.len() {
            let tree = &leaves[..size];
            let root = root_recursive(tree);
            let levels = Levels::new(tree.to_vec());
            assert_eq!(levels.root(), root);
            for index in 0..size {
                let path = inclusion_path(tree, index).unwrap();
                assert_eq!(levels.path(index).unwrap(), path, "levels path {index} of {size}");
                verify_inclusion(&tree[index], index as u64, size as u64, &path, &root).unwrap();
                assert!(verify_inclusion(&tree[index], index as u64 + 1, size as u64, &path, &root).is_err() || size == 1);
                // The size is not bound by the path alone (the leftmost paths of sizes 3 and 4
                // coincide): proofs bind it through the ledger entry's count and the checkpoint.
                let mut longer = path.clone();
                longer.push([0; 32]);
                assert!(verify_inclusion(&tree[index], index as u64, size as u64, &longer, &root).is_err());
                if let Some((_, shorter)) = path.split_last() {
                    assert!(verify_inclusion(&tree[index], index as u64, size as u64, shorter, &root).is_err());
                }
                for corrupt in 0..path.len() {
                    let mut bad = path.clone();
                    bad[corrupt][0] ^= 1;
                    assert!(verify_inclusion(&tree[index], index as u64, size as u64, &bad, &root).is_err());
                }
            }
            for old in 1..=size {
                let path = consistency_path(tree, old).unwrap();
                let old_root = root_recursive(&leaves[..old]);
                verify_consistency(old as u64, size as u64, &old_root, &root, &path).unwrap();
                for corrupt in 0..path.len() {
                    let mut bad = path.clone();
                    bad[corrupt][31] ^= 1;
                    assert!(verify_consistency(old as u64, size as u64, &old_root, &root, &bad).is_err());
                }
                if old < size {
                    assert!(verify_consistency(old as u64 + 1, size as u64, &old_root, &root, &path).is_err());
                }
            }
        }
        assert!(verify_inclusion(&leaves[0], 5, 5, &[], &leaves[0]).is_err());
        assert!(consistency_path(&leaves, 0).is_err());
    }

    #[test]
    fn multiproofs_reject_duplicated_and_out_of_range_indices() {
        let leaves: Vec<Hash> = (0u32..13).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let root = root(&leaves);
        let proof = multiproof(&leaves, &[2, 7]);
        verify_multiproof(&root, &[2, 7], &[leaves[2], leaves[7]], 13, &proof).unwrap();
        assert_eq!(verify_multiproof(&root, &[2, 2], &[leaves[2], leaves[2]], 13, &proof), Err(ProofError::DuplicateIndex { index: 2 }));
        assert!(verify_multiproof(&root, &[2, 13], &[leaves[2], leaves[7]], 13, &proof).is_err());
        assert!(verify_multiproof(&root, &[2, 7], &[leaves[7], leaves[2]], 13, &proof).is_err());
        assert!(verify_multiproof(&root, &[2], &[leaves[2], leaves[7]], 13, &proof).is_err());
    }

    #[test]
    fn rs_merkle_matches_recursive_reference_for_sizes_0_to_1000() {
        let leaves: Vec<Hash> = (0u32..1000).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 0..=leaves.len() {
            assert_eq!(root(&leaves[..size]), root_recursive(&leaves[..size]), "size {size}");
        }
    }
}
