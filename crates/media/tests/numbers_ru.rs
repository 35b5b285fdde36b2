//! The shipped Russian number prompts (config/prompts/ru/numbers, made by
//! scripts/make-prompts.sh) load, match the code's list of pieces, and play as phrases.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::PathBuf;

use media::goertzel::DtmfDetector;
use media::numbers_ru::{minutes_phrase, position_phrase, prompt_files, PIECES};
use media::prompts::{PromptCache, FRAME_SAMPLES};

fn numbers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/prompts/ru/numbers")
}

fn cache() -> PromptCache {
    let files = prompt_files(&numbers_dir());
    let ulaw_like = |pcm: &[i16]| pcm.iter().map(|&s| (s >> 8) as u8).collect::<Vec<u8>>();
    PromptCache::load(
        files.iter().map(|(n, p)| (n.clone(), p.as_path())),
        &[("PCMU", &ulaw_like)],
    )
    .unwrap_or_else(|errs| {
        panic!(
            "{}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

#[test]
fn every_piece_is_shipped_and_nothing_else() {
    let mut on_disk: Vec<String> = std::fs::read_dir(numbers_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".wav"))
        .map(|f| format!("numbers/{}", f.trim_end_matches(".wav")))
        .collect();
    on_disk.sort();
    let mut wanted: Vec<String> = PIECES.iter().map(|(n, _)| (*n).to_owned()).collect();
    wanted.sort();
    assert_eq!(on_disk, wanted);
    let total: u64 = std::fs::read_dir(numbers_dir())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total < 3 << 20, "number prompts take {total} bytes");
}

#[test]
fn phrases_play_from_the_shipped_prompts() {
    let cache = cache();
    for (phrase, min_ms, max_ms) in [
        (minutes_phrase(21), 600, 3000),
        (minutes_phrase(5), 400, 2000),
        (position_phrase(3), 800, 3500),
        (position_phrase(123), 1200, 5000),
    ] {
        let mut seq = cache.sequence(&phrase).unwrap();
        let frames = seq.total_frames();
        assert!(
            (min_ms / 20..=max_ms / 20).contains(&frames),
            "{phrase:?}: {frames} frames"
        );
        let mut loud = 0;
        while let Some(f) = seq.next_frame() {
            assert_eq!(f.pcm().len(), FRAME_SAMPLES);
            assert_eq!(f.encoded("PCMU").unwrap().len(), FRAME_SAMPLES);
            if f.pcm().iter().any(|s| s.unsigned_abs() > 3000) {
                loud += 1;
            }
        }
        assert!(loud * 2 > frames, "{phrase:?}: mostly silent");
    }
}

#[test]
fn no_dtmf_detected_in_spoken_numbers() {
    let cache = cache();
    let mut det = DtmfDetector::new(8000);
    for name in cache.names() {
        let p = cache.get(name).unwrap();
        assert!(det.push(p.pcm()).is_empty(), "false digit in {name}");
    }
}
