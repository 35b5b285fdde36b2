//! Prompt loading, checking, caching and sequencing on WAV files written by the test.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use media::prompts::{
    read_wav, Encoder, Prompt, PromptCache, PromptError, PromptName, UnknownPrompt, FRAME_SAMPLES,
};

/// A fresh directory under the system temp dir for one test.
fn tmpdir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-media-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn tone(freq: f64, rate: f64, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| (8000.0 * (std::f64::consts::TAU * freq * n as f64 / rate).sin()) as i16)
        .collect()
}

/// A stand-in codec: the high byte of each sample (1 byte per sample like G.711).
fn high_byte(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| (s >> 8) as u8).collect()
}

#[test]
fn an_8khz_file_loads_unchanged_and_is_padded_to_whole_frames() {
    let d = tmpdir("8k");
    let samples: Vec<i16> = (0..1000).map(|i| (i * 7 % 3000) as i16).collect();
    let path = d.join("a.wav");
    write_wav(&path, 8000, 1, &samples);
    let p = Prompt::load("a".into(), &path, &[("X", &high_byte)]).unwrap();
    assert_eq!(p.len_samples(), 1000);
    assert_eq!(p.frames(), 7); // 1000 / 160 = 6.25
    assert_eq!(p.duration(), Duration::from_millis(140));
    assert_eq!(&p.pcm()[..1000], &samples[..]);
    assert!(p.pcm()[1000..].iter().all(|&s| s == 0));
    assert_eq!(p.frame(0).unwrap(), &samples[..160]);
    assert_eq!(p.frame(6).unwrap().len(), FRAME_SAMPLES);
    assert!(p.frame(7).is_none());
    assert!(p.frame(usize::MAX).is_none());
    assert_eq!(
        p.encoded_frame("X", 1).unwrap(),
        &high_byte(&samples[160..320])[..]
    );
    assert!(p.encoded_frame("Y", 1).is_none());
    assert!(p.encoded_frame("X", 7).is_none());
}

#[test]
fn a_16khz_file_is_resampled_to_8khz() {
    let d = tmpdir("16k");
    let path = d.join("wide.wav");
    // 1 kHz (kept) plus 6 kHz (must be filtered out, not folded to 2 kHz).
    let wide: Vec<i16> = tone(1000.0, 16000.0, 16000)
        .iter()
        .zip(tone(6000.0, 16000.0, 16000))
        .map(|(a, b)| a / 2 + b / 2)
        .collect();
    write_wav(&path, 16000, 1, &wide);
    let pcm = read_wav(&path).unwrap();
    assert_eq!(pcm.len(), 8000);
    // Compare with the 1 kHz half alone, sampled at 8 kHz.
    let expect: Vec<i16> = tone(1000.0, 8000.0, 8000).iter().map(|s| s / 2).collect();
    let err = pcm[200..7800]
        .iter()
        .zip(&expect[200..7800])
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max()
        .unwrap();
    assert!(err < 50, "max deviation {err}");
}

fn load_err(path: &Path) -> PromptError {
    read_wav(path).unwrap_err()
}

#[test]
fn unusable_files_are_errors_naming_the_file_and_the_reason() {
    let d = tmpdir("bad");
    let stereo = d.join("stereo.wav");
    write_wav(&stereo, 8000, 2, &[1, 2, 3, 4]);
    let cd = d.join("cd.wav");
    write_wav(&cd, 44100, 1, &[1, 2, 3]);
    let eight = d.join("eight.wav");
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&eight, spec).unwrap();
        w.write_sample(5i8).unwrap();
        w.finalize().unwrap();
    }
    let float = d.join("float.wav");
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&float, spec).unwrap();
        w.write_sample(0.5f32).unwrap();
        w.finalize().unwrap();
    }
    let text = d.join("notes.wav");
    std::fs::write(&text, "this is not audio").unwrap();
    let empty = d.join("empty.wav");
    write_wav(&empty, 8000, 1, &[]);
    let missing = d.join("missing.wav");

    let cases: [(&Path, &str); 7] = [
        (&stereo, "2 channels"),
        (&cd, "44100 Hz"),
        (&eight, "8-bit"),
        (&float, "floating-point"),
        (&text, "not a valid WAV"),
        (&empty, "no samples"),
        (&missing, "not found"),
    ];
    for (path, reason) in cases {
        let msg = load_err(path).to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(reason), "{msg} should say {reason}");
    }
    assert!(matches!(
        load_err(&stereo),
        PromptError::Channels { channels: 2, .. }
    ));
    assert!(matches!(
        load_err(&cd),
        PromptError::SampleRate { rate: 44100, .. }
    ));
    assert!(matches!(
        load_err(&eight),
        PromptError::Bits { bits: 8, .. }
    ));
    assert!(matches!(load_err(&float), PromptError::Float { .. }));
    assert!(matches!(load_err(&text), PromptError::NotWav { .. }));
    assert!(matches!(load_err(&empty), PromptError::Empty { .. }));
    assert!(matches!(load_err(&missing), PromptError::Missing { .. }));

    // A truncated file (header says more data than there is) is not a valid WAV either.
    let cut = d.join("cut.wav");
    write_wav(&cut, 8000, 1, &[7; 1000]);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 501]).unwrap();
    assert!(
        matches!(load_err(&cut), PromptError::NotWav { .. }),
        "{}",
        load_err(&cut)
    );
}

#[test]
fn the_cache_reports_every_bad_file_at_once() {
    let d = tmpdir("cache-bad");
    let good = d.join("good.wav");
    write_wav(&good, 8000, 1, &[1; 200]);
    let stereo = d.join("stereo.wav");
    write_wav(&stereo, 8000, 2, &[1; 200]);
    let missing = d.join("nope.wav");
    let files = [
        (PromptName::new("good"), good.as_path()),
        (PromptName::new("stereo"), stereo.as_path()),
        (PromptName::new("nope"), missing.as_path()),
    ];
    let errs = PromptCache::load(files, &[]).unwrap_err();
    assert_eq!(errs.len(), 2);
    assert!(matches!(errs[0], PromptError::Channels { .. }));
    assert!(matches!(errs[1], PromptError::Missing { .. }));
}

/// Counts calls, to show encoding happens at load and never while playing.
struct Counting<'a>(&'a Cell<usize>);
impl Encoder for Counting<'_> {
    fn encode(&self, pcm: &[i16]) -> Vec<u8> {
        self.0.set(self.0.get() + 1);
        high_byte(pcm)
    }
}

#[test]
fn playing_is_zero_copy_and_encodes_nothing() {
    let d = tmpdir("cache");
    let (a, b) = (d.join("a.wav"), d.join("b.wav"));
    let sa: Vec<i16> = (0..320).map(|i| i as i16).collect(); // 2 frames
    write_wav(&a, 8000, 1, &sa);
    write_wav(&b, 16000, 1, &[100; 960]); // 480 samples at 8 kHz = 3 frames
    let calls = Cell::new(0);
    let enc = Counting(&calls);
    let cache = PromptCache::load(
        [
            (PromptName::new("a"), a.as_path()),
            ("b".into(), b.as_path()),
        ],
        &[("PCMX", &enc)],
    )
    .unwrap();
    let after_load = calls.get();
    assert_eq!(
        after_load,
        2 + 3 + 1,
        "a, b and the silence frame, once each"
    );
    assert_eq!(
        cache.names().map(PromptName::as_str).collect::<Vec<_>>(),
        ["a", "b"]
    );

    // The same shared buffer every time.
    let pa = cache.get(&"a".into()).unwrap();
    assert!(Arc::ptr_eq(pa, cache.get(&"a".into()).unwrap()));

    let mut seq = cache.sequence([&"a".into(), &"b".into()]).unwrap();
    seq.push_silence(Duration::from_millis(50)); // 3 frames
    let a_again: PromptName = "a".into();
    seq.push_prompt(cache.get(&a_again).unwrap().clone());
    assert_eq!(seq.total_frames(), 2 + 3 + 3 + 2);

    let mut played = Vec::new();
    let mut names = Vec::new();
    let buf_range = pa.pcm().as_ptr_range();
    while let Some(f) = seq.next_frame() {
        assert_eq!(f.pcm().len(), FRAME_SAMPLES);
        assert_eq!(f.encoded("PCMX").unwrap(), &high_byte(f.pcm())[..]);
        if f.prompt().as_str() == "a" {
            assert!(buf_range.contains(&f.pcm().as_ptr()), "frame copied");
        }
        names.push(f.prompt().to_string());
        played.extend_from_slice(f.pcm());
    }
    assert_eq!(
        names,
        [
            "a",
            "a",
            "b",
            "b",
            "b",
            "(silence)",
            "(silence)",
            "(silence)",
            "a",
            "a"
        ]
    );
    assert_eq!(&played[..320], &sa[..]);
    // b: a constant, through the resampling filter (edges ramp because the file starts and ends).
    assert!(played[360..760].iter().all(|&s| (98..=102).contains(&s)));
    assert!(played[800..1280].iter().all(|&s| s == 0));
    assert_eq!(&played[1280..], &sa[..]);
    assert!(seq.is_finished());
    assert!(seq.next_frame().is_none());
    assert_eq!(calls.get(), after_load, "no encoding while playing");

    seq.rewind();
    assert_eq!(seq.remaining_frames(), 10);
    seq.next_frame().unwrap();
    assert_eq!(seq.remaining_frames(), 9);
}

#[test]
fn an_unknown_prompt_in_a_sequence_is_an_error() {
    let cache =
        PromptCache::from_prompts([Arc::new(Prompt::from_pcm("x".into(), &[1; 10], &[]))], &[]);
    let err = cache.sequence([&"x".into(), &"y".into()]).unwrap_err();
    assert_eq!(err, UnknownPrompt("y".into()));
    assert_eq!(err.to_string(), "no prompt named y is loaded");
    let mut empty = cache.sequence([]).unwrap();
    assert!(empty.is_finished());
    assert!(empty.next_frame().is_none());
    // A tiny prompt still plays one whole frame.
    let mut one = cache.sequence([&"x".into()]).unwrap();
    let f = one.next_frame().unwrap();
    assert_eq!(&f.pcm()[..10], &[1; 10]);
    assert!(f.pcm()[10..].iter().all(|&s| s == 0));
    assert!(f.encoded("PCMU").is_none());
}
