//! Blobs: what is written reads back, and what should not restore does not.

use super::*;
use crate::engine::snapshot::GlobalValue;

fn image_of(data: Vec<u8>) -> StateImage {
    let chunks = (data.len() / CHUNK) as u32;
    StateImage {
        preopens: 1,
        memories: vec![
            MemoryImage { bytes: 1 << 30, runs: vec![(1, chunks)], data: data.into() },
            MemoryImage { bytes: 65536, runs: vec![], data: Pages::default() },
        ],
        globals: vec![GlobalValue::I32(-3), GlobalValue::F64(0.5)],
    }
}

fn whole(packed: &Packed) -> Vec<u8> {
    packed.parts.concat()
}

/// Bytes nothing compresses (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn pages_that_compress_are_compressed_and_noise_is_kept_as_it_is() {
    for (data, zstd) in [(vec![7; 2 << 20], true), (noise(2 << 20), false), (vec![7; 2 * 4096], true)] {
        let image = image_of(data.clone());
        let captured = Captured { image: image.clone(), key: "k".into() };
        let packed = encode(&captured, vec![("a/b.txt".into(), b"hi".to_vec())]).unwrap();
        let bytes = whole(&packed);
        assert_eq!(packed.len, bytes.len() as u64);
        assert_eq!(packed.checksum(), tree_checksum(&[&bytes]));
        assert!(bytes.starts_with(&MAGIC));
        if zstd {
            let most = ALIGN + (data.len() / 5).next_multiple_of(ALIGN);
            assert!(bytes.len() <= most, "{} bytes stored for {}", bytes.len(), data.len());
        } else {
            assert!(bytes.len() > data.len(), "kept as they are");
            // Aligned, so that they can be mapped.
            let at = bytes.len() - data.len().next_multiple_of(ALIGN);
            assert_eq!(at % ALIGN, 0);
            assert_eq!(&bytes[at..at + data.len()], &data[..]);
        }
        let (back, files) = decode("snap_1", &packed.checksum(), &Blob::Bytes(bytes.into())).unwrap();
        assert_eq!(back, image);
        assert_eq!(files, vec![("a/b.txt".to_string(), b"hi".to_vec())]);
    }
}

#[test]
fn the_checksum_does_not_depend_on_how_the_blob_is_cut_or_hashed() {
    let bytes = noise(9 * PIECE + 123);
    let whole = tree_checksum(&[&bytes]);
    assert_eq!(tree_checksum(&[&bytes[..5], &bytes[5..PIECE + 7], &[], &bytes[PIECE + 7..]]), whole);
    let one_by_one: Vec<u8> = bytes.chunks(PIECE).flat_map(|p| xxhash_rust::xxh3::xxh3_128(p).to_le_bytes()).collect();
    assert_eq!(checksum(&one_by_one), whole);
    let mut flipped = bytes.clone();
    flipped[8 * PIECE + 1] ^= 1;
    assert_ne!(tree_checksum(&[&flipped]), whole);
}

#[cfg(target_os = "linux")]
#[test]
fn a_stored_file_s_pages_are_shared_with_it_not_copied() {
    let image = image_of(noise(1 << 20));
    let packed = encode(&Captured { image: image.clone(), key: "k".into() }, Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    std::fs::write(&path, whole(&packed)).unwrap();
    let file =
        crate::engine::pages::FileBytes::try_map(std::fs::File::open(&path).unwrap()).map_err(|(_, e)| e).unwrap();
    let (back, _) = decode("snap_1", &packed.checksum(), &Blob::File(file.into())).unwrap();
    assert_eq!(back, image);
    let (_, at) = back.memories[0].data.file().expect("the pages are the file's");
    assert_eq!(at % ALIGN, 0);
    assert!(format!("{:?}", back.memories[0].data).contains("file"));
}

#[test]
fn a_flipped_a_foreign_and_a_lying_blob_are_refused() {
    let packed = encode(&Captured { image: image_of(vec![7; 4096]), key: "k".into() }, Vec::new()).unwrap();
    let bytes = whole(&packed);

    // One flipped byte: refused by its checksum.
    let mut flipped = bytes.clone();
    flipped[30] ^= 1;
    let err = decode("snap_1", &packed.checksum(), &Blob::Bytes(flipped.into())).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");

    let refused = |bytes: Vec<u8>| {
        let sum = if bytes.starts_with(&MAGIC) { tree_checksum(&[&bytes]) } else { checksum(&bytes) };
        decode("snap_1", &sum, &Blob::Bytes(bytes.into())).unwrap_err().to_string()
    };
    // Another blob format, old-style and new-style: refused as written by another version.
    let mut plain = postcard::to_stdvec(&(FORMAT + 1, 0u8)).unwrap();
    plain.extend_from_slice(&[0; 16]);
    let mut foreign = (plain.len() as u64).to_le_bytes().to_vec();
    foreign.extend(zstd::bulk::compress(&plain, 1).unwrap());
    assert!(refused(foreign).contains("another version of Cella"));
    let head = zstd::bulk::compress(&plain, 1).unwrap();
    let mut foreign = MAGIC.to_vec();
    foreign.extend((head.len() as u64).to_le_bytes());
    foreign.extend((plain.len() as u64).to_le_bytes());
    foreign.extend(head);
    assert!(refused(foreign).contains("another version of Cella"));

    // Sizes beyond any session are refused before anything is allocated.
    let mut lying = vec![0xff; 8];
    lying.extend_from_slice(&bytes[8..]);
    assert!(refused(lying).contains("claims"));
    let mut lying = bytes.clone();
    lying[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(refused(lying).contains("claims"));
    // Cut short: refused, not read past its end.
    assert!(refused(bytes[..bytes.len() - 10].to_vec()).contains("not where it says"));
    assert!(refused(bytes[..20].to_vec()).contains("cut short"));
}

/// Blobs written before 2026-12-01 (format 2) still restore.
#[test]
fn a_format_2_blob_still_reads() {
    let image = image_of(vec![5; 3 * 4096]);
    let files = vec![("x".to_string(), b"y".to_vec())];
    let plain =
        postcard::to_stdvec(&(FORMAT_2, &image, vec![StoredFile { path: "x".into(), bytes: b"y".to_vec() }])).unwrap();
    let mut old = (plain.len() as u64).to_le_bytes().to_vec();
    old.extend(zstd::bulk::compress(&plain, 1).unwrap());
    let sum = checksum(&old);
    assert_eq!(decode("snap_1", &sum, &Blob::Bytes(old.into())).unwrap(), (image, files));
}
