use super::*;

#[tokio::test]
async fn a_moved_file_is_renamed_into_place_or_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let st = Storage::from_config(&StorageConfig::default(), dir.path()).unwrap();
    let data: Vec<u8> = (0..(CHUNK + 77)).map(|i| (i % 251) as u8).collect();
    let want = PutResult {
        size: data.len() as u64,
        sha256: crate::util::sha256_hex(&data),
    };
    // Same file system: renamed (the folder made on the way).
    let src = dir.path().join("work.zip");
    std::fs::write(&src, &data).unwrap();
    let put = st.put_file_moved("o/j/a.zip", &src).await.unwrap();
    assert_eq!(put, want);
    assert!(!src.exists(), "taken");
    assert_eq!(st.read("o/j/a.zip").await.unwrap(), data);
    // Another file system where there is one (tmpfs): streamed, then
    // removed; the same result either way.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let src = shm.path().join("work.zip");
    std::fs::write(&src, &data).unwrap();
    let put = st.put_file_moved("o/j/b.zip", &src).await.unwrap();
    assert_eq!(put, want);
    assert!(!src.exists(), "taken");
    assert_eq!(st.read("o/j/b.zip").await.unwrap(), data);
    // A refused write stores nothing and leaves the file.
    let st = st.with_fault(std::sync::Arc::new(|_| Some("no".into())));
    let src = dir.path().join("work2.zip");
    std::fs::write(&src, &data).unwrap();
    let err = st.put_file_moved("o/j/c.zip", &src).await.unwrap_err();
    assert!(matches!(err, StorageError::Injected(_)), "{err:?}");
    assert!(src.exists());
    assert!(!st.exists("o/j/c.zip").await.unwrap());
}

#[tokio::test]
async fn put_file_streams_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let st = Storage::from_config(&StorageConfig::default(), dir.path()).unwrap();
    let src = dir.path().join("src.bin");
    let data: Vec<u8> = (0..(CHUNK * 2 + 123)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let put = st
        .put_file("org/job/file.csv", &src, u64::MAX)
        .await
        .unwrap();
    assert_eq!(put.size, data.len() as u64);
    let digest = ring::digest::digest(&ring::digest::SHA256, &data);
    assert_eq!(put.sha256, crate::util::hex(digest.as_ref()));
    assert_eq!(st.read("org/job/file.csv").await.unwrap(), data);
    st.delete("org/job/file.csv").await.unwrap();
    assert!(!st.exists("org/job/file.csv").await.unwrap());
}

/// Every point a write can fail at, first chunk to just before the
/// closing rename: nothing at the key, nothing left unfinished.
#[tokio::test]
async fn a_write_failing_midway_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    let data: Vec<u8> = (0..(CHUNK * 2 + 123)).map(|i| (i % 249) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    for fail_at in [CHUNK as u64, (CHUNK * 2) as u64, data.len() as u64] {
        let st = Storage::from_config(&StorageConfig::default(), dir.path())
            .unwrap()
            .with_mid_write_fault(Arc::new(move |_, written| {
                (written >= fail_at).then(|| format!("disk gone after {written} bytes"))
            }));
        let err = st
            .put_file("org/job/f.csv", &src, u64::MAX)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Injected(_)), "{err}");
        assert!(err.retryable());
        assert!(
            !st.exists("org/job/f.csv").await.unwrap(),
            "fail at {fail_at}"
        );
        let partial = dir.path().join("exports").join(PARTIAL_DIR);
        assert_eq!(
            std::fs::read_dir(&partial).unwrap().count(),
            0,
            "fail at {fail_at}"
        );
    }
}
