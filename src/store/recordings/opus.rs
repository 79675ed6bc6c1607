//! Ogg/Opus output (RFC 7845): an `OpusHead` page, an `OpusTags` page, then 20 ms stereo Opus
//! packets, about one second per page. Granule positions count 48 kHz samples including the
//! encoder's pre-skip; the last page's granule trims the padding of the final packet.
//!
//! Compiled only with the `opus` feature (libopus through audiopus). Runs on the compaction
//! worker's thread only.

use std::io::Write;
use std::path::Path;

use audiopus::coder::Encoder;
use audiopus::{Application, Bitrate, Channels, SampleRate};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::RecordingError;
use super::compact::{Frames, PACKET_FRAMES};
use super::raw;

/// Both channels together; ample for narrowband speech.
const BITRATE: i32 = 32_000;
/// 48 kHz samples per 8 kHz sample.
const GRANULE_PER_FRAME: u64 = 48_000 / raw::SAMPLE_RATE as u64;
/// Packets per Ogg page (one second).
const PACKETS_PER_PAGE: u64 = 50;
/// The largest packet libopus produces (RFC 6716 §3.2.1: 1275 bytes per frame).
const MAX_PACKET: usize = 1500;

/// Encode `frames` into an Ogg/Opus stream on `out`; returns the stereo frames of audio.
pub(super) fn write_ogg_opus<W: Write>(
    frames: &mut Frames<'_>,
    out: W,
    path: &Path,
) -> Result<u64, RecordingError> {
    let enc_err = |e: audiopus::Error| RecordingError::Encode {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let io_err = |source| RecordingError::Io {
        path: path.to_owned(),
        source,
    };
    let mut encoder =
        Encoder::new(SampleRate::Hz8000, Channels::Stereo, Application::Audio).map_err(enc_err)?;
    encoder
        .set_bitrate(Bitrate::BitsPerSecond(BITRATE))
        .map_err(enc_err)?;
    let lookahead = u64::from(encoder.lookahead().map_err(enc_err)?);
    let pre_skip = lookahead * GRANULE_PER_FRAME;
    let serial = serial_of(path);
    let mut ogg = PacketWriter::new(out);
    ogg.write_packet(
        opus_head(pre_skip as u16),
        serial,
        PacketWriteEndInfo::EndPage,
        0,
    )
    .map_err(io_err)?;
    ogg.write_packet(opus_tags(), serial, PacketWriteEndInfo::EndPage, 0)
        .map_err(io_err)?;

    let mut packet = [0u8; MAX_PACKET];
    let mut packets: u64 = 0;
    // The encoder delays its input by `lookahead` frames: keep feeding silence until the last
    // real frame has come out.
    let silence = [0i16; 2 * PACKET_FRAMES];
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let pcm: &[i16] = match frames.next_packet()? {
            Some(_) => frames.pcm(),
            None if packets * (PACKET_FRAMES as u64) < frames.total + lookahead => &silence,
            None => break,
        };
        let n = encoder.encode(pcm, &mut packet).map_err(enc_err)?;
        // Write the previous packet now that we know it is not the last.
        if let Some(prev) = pending.replace(packet[..n].to_vec()) {
            let granule = packets * PACKET_FRAMES as u64 * GRANULE_PER_FRAME;
            let end = if packets.is_multiple_of(PACKETS_PER_PAGE) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            ogg.write_packet(prev, serial, end, granule)
                .map_err(io_err)?;
        }
        packets += 1;
    }
    // The last page's granule: pre-skip plus the real audio, trimming the padding.
    let last = match pending {
        Some(last) => last,
        None => {
            // No audio at all: one packet of silence, zero samples after pre-skip.
            let n = encoder.encode(&silence, &mut packet).map_err(enc_err)?;
            packet[..n].to_vec()
        }
    };
    let final_granule = pre_skip + frames.total * GRANULE_PER_FRAME;
    ogg.write_packet(last, serial, PacketWriteEndInfo::EndStream, final_granule)
        .map_err(io_err)?;
    ogg.into_inner().flush().map_err(io_err)?;
    Ok(frames.total)
}

/// The identification header (RFC 7845 §5.1), channel mapping family 0.
fn opus_head(pre_skip: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(raw::CHANNELS as u8);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&raw::SAMPLE_RATE.to_le_bytes()); // input sample rate (informational)
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family: mono/stereo
    h
}

/// The comment header (RFC 7845 §5.2).
fn opus_tags() -> Vec<u8> {
    let vendor = concat!("voxbridge ", env!("CARGO_PKG_VERSION"));
    let comment = "TITLE=call recording (left: caller, right: what the caller heard)";
    let mut t = Vec::with_capacity(8 + 4 + vendor.len() + 4 + 4 + comment.len());
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&(comment.len() as u32).to_le_bytes());
    t.extend_from_slice(comment.as_bytes());
    t
}

/// A stream serial number derived from the file name (FNV-1a), stable for a given call.
fn serial_of(path: &Path) -> u32 {
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .unwrap_or(b"");
    name.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
