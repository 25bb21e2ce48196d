//! Sending chunks.

use super::*;

#[test]
fn the_registry_minimum_chunk_length_is_honoured() {
    // (chunk size, OCI-Chunk-Min-Length, expected chunk length)
    let cases = [(100, Some(250), 250), (300, Some(250), 300), (100, Some(5_000), 100), (100, None, 100)];
    for (chunk, min, want) in cases {
        let mut scenario = Scenario::new(1_010).chunk(chunk);
        if let Some(min) = min {
            scenario = scenario.min_chunk(min);
        }
        let run = scenario.run();
        assert_eq!(run.result, Ok(()), "{chunk} {min:?}");
        assert_eq!(run.chunk_len, want, "{chunk} {min:?}");
        let chunks = run.chunks();
        let (last, rest) = chunks.split_last().unwrap();
        for (start, end, _) in rest {
            assert_eq!(end - start, want, "every chunk but the last is full: {chunks:?}");
            if let Some(min) = min.filter(|&m| m <= 1_000) {
                assert!(end - start >= min);
            }
        }
        assert_eq!(last.1, 1_010);
    }
}
