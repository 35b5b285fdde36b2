//! Streaming WAV (RIFF, 16-bit PCM) writing and the repair of files cut short by a crash.
//!
//! A recording is written while the call runs: [`WavWriter::new`] writes a 44-byte header whose
//! sizes are still zero, samples are appended, and [`WavWriter::finish`] seeks back and writes
//! the real sizes. When the daemon dies in between, the header keeps its zero sizes and players
//! show an empty file; [`repair`] rewrites the sizes from the file's length at the next start.
//! Both work over any `std::io` stream, so they are tested on in-memory cursors.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Length of the canonical header written by [`WavWriter`].
pub const HEADER_LEN: u64 = 44;

/// Why a file could not be repaired.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// Not a RIFF/WAVE file.
    #[error("not a RIFF/WAVE file")]
    NotWav,
    /// A RIFF/WAVE file without a `fmt ` chunk before its `data` chunk, or with a broken one.
    #[error("no usable fmt chunk")]
    NoFormat,
    /// No `data` chunk.
    #[error("no data chunk")]
    NoData,
}

/// What [`repair`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The sizes were already right.
    Intact,
    /// The sizes were rewritten; the file now holds this many bytes of audio.
    Fixed {
        /// Length of the data chunk now declared.
        data_len: u32,
    },
}

/// Format of a 16-bit PCM WAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Channels (interleaved).
    pub channels: u16,
    /// Samples per second per channel.
    pub sample_rate: u32,
}

impl Spec {
    fn block_align(self) -> u16 {
        self.channels.saturating_mul(2)
    }
}

fn header(spec: Spec, data_len: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    let block = spec.block_align();
    let byte_rate = spec.sample_rate.saturating_mul(u32::from(block));
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&spec.channels.to_le_bytes());
    h[24..28].copy_from_slice(&spec.sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Writes 16-bit PCM samples to a WAV stream as they come.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    inner: W,
    spec: Spec,
    data_len: u64,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes the header (sizes zero until [`WavWriter::finish`]).
    pub fn new(mut inner: W, spec: Spec) -> io::Result<Self> {
        inner.write_all(&header(spec, 0))?;
        Ok(WavWriter {
            inner,
            spec,
            data_len: 0,
        })
    }

    /// Appends interleaved samples.
    pub fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        self.inner.write_all(&buf)?;
        self.data_len += buf.len() as u64;
        Ok(())
    }

    /// Bytes of audio written so far.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Writes the real sizes into the header and returns the stream.
    pub fn finish(mut self) -> io::Result<W> {
        let len = u32::try_from(self.data_len).unwrap_or(u32::MAX - 36);
        self.inner.seek(SeekFrom::Start(0))?;
        self.inner.write_all(&header(self.spec, len))?;
        self.inner.seek(SeekFrom::End(0))?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// Rewrites the RIFF and data chunk sizes of a WAV from the stream's length, keeping whole
/// sample frames. The data chunk is taken to run to the end of the file (a recording is cut
/// short there). A trailing partial frame is left in place but not declared.
pub fn repair<F: Read + Write + Seek>(f: &mut F) -> Result<Repair, WavError> {
    let file_len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    let mut riff = [0u8; 12];
    f.read_exact(&mut riff).map_err(|_| WavError::NotWav)?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut pos = 12u64;
    let mut block_align: Option<u16> = None;
    loop {
        let mut chunk = [0u8; 8];
        f.seek(SeekFrom::Start(pos))?;
        if f.read_exact(&mut chunk).is_err() {
            return Err(WavError::NoData);
        }
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        let body = pos + 8;
        match &chunk[0..4] {
            b"fmt " => {
                let mut fmt = [0u8; 16];
                f.read_exact(&mut fmt).map_err(|_| WavError::NoFormat)?;
                let align = u16::from_le_bytes([fmt[12], fmt[13]]);
                if align == 0 {
                    return Err(WavError::NoFormat);
                }
                block_align = Some(align);
            }
            b"data" => {
                let align = u64::from(block_align.ok_or(WavError::NoFormat)?);
                let available = file_len.saturating_sub(body);
                let data_len = available - available % align;
                let data_len = u32::try_from(data_len).unwrap_or((u32::MAX - 40) & !3);
                let riff_len = u32::try_from(body - 8 + u64::from(data_len)).unwrap_or(u32::MAX);
                let declared_riff = u32::from_le_bytes([riff[4], riff[5], riff[6], riff[7]]);
                if size == data_len && declared_riff == riff_len {
                    return Ok(Repair::Intact);
                }
                f.seek(SeekFrom::Start(4))?;
                f.write_all(&riff_len.to_le_bytes())?;
                f.seek(SeekFrom::Start(pos + 4))?;
                f.write_all(&data_len.to_le_bytes())?;
                f.flush()?;
                return Ok(Repair::Fixed { data_len });
            }
            _ => {}
        }
        // chunks are padded to even lengths
        pos = body + u64::from(size) + u64::from(size & 1);
        if pos >= file_len {
            return Err(WavError::NoData);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const STEREO: Spec = Spec {
        channels: 2,
        sample_rate: 8000,
    };

    fn samples(n: usize) -> Vec<i16> {
        (0..n).map(|i| (i as i16).wrapping_mul(97)).collect()
    }

    #[test]
    fn finished_file_reads_back_with_hound() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), STEREO).unwrap();
        let s = samples(320);
        w.write_samples(&s[..100]).unwrap();
        w.write_samples(&s[100..]).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(bytes.len() as u64, HEADER_LEN + 640);
        let r = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
        assert_eq!(r.spec().channels, 2);
        assert_eq!(r.spec().sample_rate, 8000);
        let back: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(back, s);
        let mut c = Cursor::new(bytes);
        assert_eq!(repair(&mut c).unwrap(), Repair::Intact);
    }

    #[test]
    fn file_cut_short_by_a_crash_is_repaired() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), STEREO).unwrap();
        let s = samples(1000);
        w.write_samples(&s).unwrap();
        // the process dies: no finish, header sizes are still zero; the last frame is torn
        let mut bytes = w.inner.into_inner();
        bytes.truncate(bytes.len() - 3);
        assert_eq!(&bytes[40..44], &[0, 0, 0, 0]);
        assert!(hound::WavReader::new(Cursor::new(&bytes))
            .map(|r| r.len() == 0)
            .unwrap_or(true));
        let mut c = Cursor::new(bytes);
        // 2000 bytes minus the torn 3 → 1997 available → 1996 (whole stereo frames)
        assert_eq!(repair(&mut c).unwrap(), Repair::Fixed { data_len: 1996 });
        let bytes = c.into_inner();
        let r = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
        let back: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(back, s[..998]);
        // a second repair finds nothing to do
        assert_eq!(repair(&mut Cursor::new(bytes)).unwrap(), Repair::Intact);
    }

    #[test]
    fn extra_chunks_before_data_are_skipped() {
        let mut bytes = header(STEREO, 0)[..36].to_vec();
        bytes.extend_from_slice(b"LIST\x06\0\0\0abcdef");
        bytes.extend_from_slice(b"data\0\0\0\0");
        bytes.extend_from_slice(&[1, 0, 2, 0, 3, 0, 4, 0]);
        let mut c = Cursor::new(bytes);
        assert_eq!(repair(&mut c).unwrap(), Repair::Fixed { data_len: 8 });
        let r = hound::WavReader::new(Cursor::new(c.into_inner())).unwrap();
        let back: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(back, [1, 2, 3, 4]);
    }

    #[test]
    fn garbage_is_refused_without_writing() {
        let mut c = Cursor::new(b"not a wav file at all".to_vec());
        assert!(matches!(repair(&mut c), Err(WavError::NotWav)));
        assert_eq!(c.into_inner(), b"not a wav file at all");
        let mut short = Cursor::new(header(STEREO, 0)[..30].to_vec());
        assert!(repair(&mut short).is_err());
        let mut empty = Cursor::new(Vec::new());
        assert!(matches!(repair(&mut empty), Err(WavError::NotWav)));
    }
}
