//! The tree, the proofs and the notes against outside reference data and
//! against the RFC's recursive definitions.
//!
//! Vectors: the RFC 6962 test data of transparency-dev/merkle
//! (`proof/verify_test.go`: eight leaf inputs, the roots of the trees of
//! sizes 1 to 8, inclusion and consistency proofs), and the signed note of
//! `golang.org/x/mod/sumdb/note` (the PeterNeumann key and signature).

use proptest::prelude::*;

use super::note::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
use super::proof::{
    ProofError, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
};
use super::tree::CompactTree;
use super::{Hash, empty_root, leaf_hash, node_hash, split_point};

fn hex(text: &str) -> Hash {
    let digest = clawback_events::Digest::from_hex(text).expect("64 hex digits");
    digest.0
}

fn bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// The eight leaf inputs of the reference data.
fn reference_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|input| leaf_hash(&bytes(input)))
    .collect()
}

/// The roots of the trees of the first 1..=8 reference leaves.
const REFERENCE_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// MTH straight from RFC 9162 §2.1.1, recursively: the reference the
/// incremental tree is checked against.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

fn tree_of(leaves: &[Hash]) -> CompactTree {
    let mut tree = CompactTree::new();
    for leaf in leaves {
        tree.push(*leaf);
    }
    tree
}

fn synthetic_leaves(count: usize) -> Vec<Hash> {
    (0..count as u64)
        .map(|index| leaf_hash(&index.to_le_bytes()))
        .collect()
}

#[test]
fn the_empty_tree_root_is_sha256_of_nothing() {
    assert_eq!(
        CompactTree::new().root(),
        hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

#[test]
fn roots_match_the_reference_data() {
    let leaves = reference_leaves();
    for (size, expected) in (1..=8).zip(REFERENCE_ROOTS) {
        assert_eq!(
            tree_of(&leaves[..size]).root(),
            hex(expected),
            "size {size}"
        );
    }
}

#[test]
fn inclusion_proofs_match_the_reference_data() {
    let leaves = reference_leaves();
    // (leaf index, tree size, proof), indexes 0-based.
    let vectors: [(u64, usize, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, expected) in vectors {
        let expected: Vec<Hash> = expected.iter().map(|h| hex(h)).collect();
        let proof = inclusion_proof(&leaves[..size], index).expect("proof");
        assert_eq!(proof, expected, "leaf {index} of {size}");
        let root = hex(REFERENCE_ROOTS[size - 1]);
        verify_inclusion(index, size as u64, &leaves[index as usize], &proof, &root)
            .expect("the reference proof verifies");
    }
}

#[test]
fn consistency_proofs_match_the_reference_data() {
    let leaves = reference_leaves();
    let vectors: [(u64, usize, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (old, new, expected) in vectors {
        let expected: Vec<Hash> = expected.iter().map(|h| hex(h)).collect();
        let proof = consistency_proof(&leaves[..new], old).expect("proof");
        assert_eq!(proof, expected, "{old} -> {new}");
        let old_root = hex(REFERENCE_ROOTS[old as usize - 1]);
        let new_root = hex(REFERENCE_ROOTS[new - 1]);
        verify_consistency(old, new as u64, &proof, &old_root, &new_root)
            .expect("the reference proof verifies");
    }
}

#[test]
fn the_edge_cases_of_consistency_follow_the_reference_verifier() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    let empty = empty_root();
    // Equal sizes need equal roots and an empty proof.
    assert!(verify_consistency(0, 0, &[], &a, &a).is_ok());
    assert!(verify_consistency(0, 0, &[], &a, &b).is_err());
    assert!(verify_consistency(1, 1, &[], &b, &b).is_ok());
    assert!(verify_consistency(1, 1, &[empty], &empty, &empty).is_err());
    // The empty tree is a prefix of any tree, with an empty proof only.
    assert!(verify_consistency(0, 1, &[], &a, &b).is_ok());
    assert!(verify_consistency(0, 1, &[empty], &empty, &empty).is_err());
    // Time does not run backwards, and growth needs a proof.
    assert!(matches!(
        verify_consistency(2, 1, &[], &a, &b),
        Err(ProofError::SizeDecreased { .. })
    ));
    assert_eq!(
        verify_consistency(1, 2, &[], &a, &b),
        Err(ProofError::Empty)
    );
    // An inclusion proof needs an index inside the tree.
    assert!(verify_inclusion(0, 0, &a, &[], &a).is_err());
    assert!(verify_inclusion(2, 1, &a, &[], &a).is_err());
    assert!(verify_inclusion(0, 1, &a, &[], &a).is_ok());
}

#[test]
fn the_incremental_root_equals_the_recursive_definition_for_sizes_0_to_300() {
    let leaves = synthetic_leaves(300);
    let mut tree = CompactTree::new();
    for size in 0..=leaves.len() {
        assert_eq!(tree.root(), reference_root(&leaves[..size]), "size {size}");
        assert_eq!(tree.frontier().len(), size.count_ones() as usize);
        let resumed =
            CompactTree::from_frontier(size as u64, tree.frontier().to_vec()).expect("frontier");
        assert_eq!(resumed, tree);
        if size < leaves.len() {
            tree.push(leaves[size]);
        }
    }
    assert!(CompactTree::from_frontier(3, vec![empty_root()]).is_err());
}

#[test]
fn every_inclusion_proof_of_every_leaf_verifies_for_sizes_1_to_64() {
    let leaves = synthetic_leaves(64);
    for size in 1..=64usize {
        let root = reference_root(&leaves[..size]);
        for index in 0..size as u64 {
            let proof = inclusion_proof(&leaves[..size], index).expect("proof");
            verify_inclusion(index, size as u64, &leaves[index as usize], &proof, &root)
                .unwrap_or_else(|error| panic!("leaf {index} of {size}: {error}"));
            // Proven against any other index, size or leaf, it fails.
            let other = (index + 1) % size as u64;
            if other != index {
                assert!(
                    verify_inclusion(other, size as u64, &leaves[index as usize], &proof, &root)
                        .is_err()
                );
            }
            // The size is authenticated by the checkpoint, not by the path
            // (leaf 0 of 5 and of 6 have the same path shape); a tree of
            // another height never fits.
            assert!(
                verify_inclusion(
                    index,
                    size as u64 * 2,
                    &leaves[index as usize],
                    &proof,
                    &root
                )
                .is_err()
            );
            assert!(verify_inclusion(index, size as u64, &leaf_hash(b"x"), &proof, &root).is_err());
        }
    }
}

#[test]
fn every_consistency_proof_verifies_for_all_sizes_up_to_64() {
    let leaves = synthetic_leaves(64);
    for new in 0..=64usize {
        let new_root = reference_root(&leaves[..new]);
        for old in 0..=new as u64 {
            let old_root = reference_root(&leaves[..old as usize]);
            let proof = consistency_proof(&leaves[..new], old).expect("proof");
            verify_consistency(old, new as u64, &proof, &old_root, &new_root)
                .unwrap_or_else(|error| panic!("{old} -> {new}: {error}"));
            if old > 0 && (old as usize) < new {
                // Another history of the same old size is not a prefix.
                let mut forked = leaves[..old as usize].to_vec();
                forked[0] = leaf_hash(b"rewritten");
                let forked_root = reference_root(&forked);
                assert!(
                    verify_consistency(old, new as u64, &proof, &forked_root, &new_root).is_err()
                );
            }
        }
    }
}

#[test]
fn flipping_any_bit_of_any_proof_up_to_size_64_is_detected() {
    let leaves = synthetic_leaves(64);
    for size in [1usize, 2, 3, 5, 8, 13, 33, 64] {
        let root = reference_root(&leaves[..size]);
        for index in 0..size as u64 {
            let proof = inclusion_proof(&leaves[..size], index).expect("proof");
            for (node, bit) in
                (0..proof.len()).flat_map(|node| (0..256).map(move |bit| (node, bit)))
            {
                let mut damaged = proof.clone();
                damaged[node][bit / 8] ^= 1 << (bit % 8);
                assert!(
                    verify_inclusion(index, size as u64, &leaves[index as usize], &damaged, &root)
                        .is_err()
                );
            }
            let mut shorter = proof.clone();
            if shorter.pop().is_some() {
                assert!(
                    verify_inclusion(index, size as u64, &leaves[index as usize], &shorter, &root)
                        .is_err()
                );
            }
            let mut longer = proof.clone();
            longer.push(root);
            assert!(
                verify_inclusion(index, size as u64, &leaves[index as usize], &longer, &root)
                    .is_err()
            );
        }
        for old in 1..size as u64 {
            let old_root = reference_root(&leaves[..old as usize]);
            let proof = consistency_proof(&leaves[..size], old).expect("proof");
            for (node, bit) in
                (0..proof.len()).flat_map(|node| (0..256).map(move |bit| (node, bit)))
            {
                let mut damaged = proof.clone();
                damaged[node][bit / 8] ^= 1 << (bit % 8);
                assert!(verify_consistency(old, size as u64, &damaged, &old_root, &root).is_err());
            }
        }
    }
}

proptest! {
    /// Random sizes well past 64: proofs still verify and roots still equal
    /// the recursive definition.
    #[test]
    fn proofs_verify_for_random_sizes(size in 1usize..3_000, pick in any::<u64>(), old_pick in any::<u64>()) {
        let leaves = synthetic_leaves(size);
        let root = tree_of(&leaves).root();
        prop_assert_eq!(root, reference_root(&leaves));
        let index = pick % size as u64;
        let proof = inclusion_proof(&leaves, index).unwrap();
        prop_assert!(verify_inclusion(index, size as u64, &leaves[index as usize], &proof, &root).is_ok());
        let old = old_pick % (size as u64 + 1);
        let old_root = tree_of(&leaves[..old as usize]).root();
        let proof = consistency_proof(&leaves, old).unwrap();
        prop_assert!(verify_consistency(old, size as u64, &proof, &old_root, &root).is_ok());
    }
}

const PETER_SIGNER: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n";
const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
    then you don't know what your problem is.\n\
    \n\
    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn notes_are_signed_and_opened_exactly_as_go_does() {
    let signer = NoteSigner::parse(PETER_SIGNER).expect("Go's signer key parses");
    assert_eq!(signer.to_signer_key(), PETER_SIGNER);
    assert_eq!(signer.verifier().to_verifier_key(), PETER_VERIFIER);
    assert_eq!(signer.sign(PETER_TEXT), PETER_NOTE);
    let verifier = NoteVerifier::parse(PETER_VERIFIER).expect("Go's verifier key parses");
    assert_eq!(verifier.open(PETER_NOTE), Ok(PETER_TEXT));
    let altered = PETER_NOTE.replace("cryptography", "cryptographY");
    assert!(matches!(
        verifier.open(&altered),
        Err(NoteError::BadSignature { .. })
    ));
    // A key with another name or ID is not this note's signer.
    let other = NoteSigner::from_seed("EnochRoot", &[7; 32]).expect("key");
    assert!(matches!(
        other.verifier().open(PETER_NOTE),
        Err(NoteError::NoKnownSignature { .. })
    ));
    // Mangled keys are refused, not misread.
    assert!(
        NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .is_err()
    );
    assert!(NoteVerifier::parse("PeterNeumann+c74f20a3").is_err());
    assert!(NoteSigner::parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK").is_err());
}

#[test]
fn a_checkpoint_note_round_trips_and_every_altered_byte_is_refused() {
    let signer = NoteSigner::from_seed("clawback/test", &[9; 32]).expect("key");
    let checkpoint = Checkpoint {
        origin: "clawback/test".to_owned(),
        size: 20_852_163,
        root: leaf_hash(b"root"),
        time_ms: 1_764_000_000_000,
    };
    let note = checkpoint.sign(&signer);
    assert!(note.starts_with("clawback/test\n20852163\n"), "{note}");
    let verifier = signer.verifier();
    assert_eq!(Checkpoint::open(&note, &verifier), Ok(checkpoint.clone()));
    assert_eq!(Checkpoint::parse_unverified(&note), Ok(checkpoint));
    for at in 0..note.len() {
        if !note.is_char_boundary(at) || !note.is_char_boundary(at + 1) {
            continue;
        }
        let mut bytes = note.clone().into_bytes();
        bytes[at] ^= 0x01;
        let Ok(altered) = String::from_utf8(bytes) else {
            continue;
        };
        assert!(
            Checkpoint::open(&altered, &verifier).is_err(),
            "byte {at} altered and still accepted"
        );
    }
}

#[test]
fn checkpoint_texts_are_parsed_strictly() {
    let root = super::to_base64(&leaf_hash(b"r"));
    let good = format!("log\n5\n{root}\ntime_ms 1\n");
    assert!(Checkpoint::parse_text(&good).is_ok());
    for bad in [
        format!("log\n05\n{root}\ntime_ms 1\n"),
        format!("log\n-5\n{root}\ntime_ms 1\n"),
        format!("log\n5\n{root}\n\ntime_ms 1\n"),
        format!("log\n5\n{root}\n"),
        format!("lo g\n5\n{root}\ntime_ms 1\n"),
        "log\n5\nAAAA\ntime_ms 1\n".to_owned(),
        format!("log\n5\n{root}\ntime_ms 1"),
    ] {
        assert!(Checkpoint::parse_text(&bad).is_err(), "{bad:?} accepted");
    }
}
