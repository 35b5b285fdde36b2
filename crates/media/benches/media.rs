//! Micro-benchmarks of the per-packet media work: G.711 encode/decode of one 20 ms frame
//! (160 samples at 8 kHz), building one RTP packet through the paced [`RtpSender`], and the
//! in-band DTMF detector (Goertzel) over one second of audio.
//!
//! Run: `cargo bench -p media --bench media` (the `make bench` target passes a short measurement
//! time). Inputs are built before the timed part; time is virtual.

use std::f64::consts::PI;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media::g711::Law;
use media::goertzel::DtmfDetector;
use media::rtp::{RtpSender, SilenceSource};

const FRAME: usize = 160;

/// `n` samples of a 440 Hz + 1 kHz mix at about −10 dBFS: speech-like level, not silence.
fn audio(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let v = 6000.0 * (2.0 * PI * 440.0 * t).sin() + 4000.0 * (2.0 * PI * 1000.0 * t).sin();
            v as i16
        })
        .collect()
}

fn g711(c: &mut Criterion) {
    let pcm = audio(FRAME);
    let mut g = c.benchmark_group("g711");
    g.throughput(Throughput::Elements(FRAME as u64));
    for law in [Law::Ulaw, Law::Alaw] {
        let mut codes = Vec::with_capacity(FRAME);
        law.encode_into(&pcm, &mut codes);
        let mut out8 = Vec::with_capacity(FRAME);
        g.bench_function(format!("{law:?} encode 160 samples"), |b| {
            b.iter(|| {
                out8.clear();
                law.encode_into(black_box(&pcm), &mut out8);
                out8.len()
            })
        });
        let mut out16 = Vec::with_capacity(FRAME);
        g.bench_function(format!("{law:?} decode 160 samples"), |b| {
            b.iter(|| {
                out16.clear();
                law.decode_into(black_box(&codes), &mut out16);
                out16.len()
            })
        });
    }
    g.finish();
}

fn rtp(c: &mut Criterion) {
    let ptime = Duration::from_millis(20);
    let t0 = Instant::now();
    let mut sender = RtpSender::new(0, 8000, ptime, t0);
    let mut source = SilenceSource::new(0xFF, FRAME);
    let mut slot = 0u32;
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("RtpSender packetize 20 ms PCMU", |b| {
        b.iter(|| {
            // the virtual clock moves one slot per packet, so exactly one packet is due
            slot = slot.wrapping_add(1);
            let now = t0 + ptime * slot;
            let pkt = sender.poll_transmit(now, &mut source);
            assert!(pkt.as_ref().is_some_and(|p| p.len() == 12 + FRAME));
            pkt
        })
    });
    g.finish();
}

fn goertzel(c: &mut Criterion) {
    let second = audio(8000);
    let mut g = c.benchmark_group("dtmf");
    g.throughput(Throughput::Elements(8000));
    g.bench_function("Goertzel detector over 1 s of audio", |b| {
        b.iter(|| {
            let mut d = DtmfDetector::new(8000);
            let mut events = 0;
            // fed frame by frame, as the RTP receive path does
            for frame in second.chunks(FRAME) {
                events += d.push(black_box(frame)).len();
            }
            assert_eq!(events, 0, "no DTMF in the bench audio");
            events
        })
    });
    g.finish();
}

criterion_group!(benches, g711, rtp, goertzel);
criterion_main!(benches);
