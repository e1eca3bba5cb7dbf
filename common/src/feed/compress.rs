//! Content codings of feed pages. Each page is coded at most once per coding and kept with
//! the page (see `Rendered` in the parent module), never per request.

use std::io::Write as _;

use super::negotiate::Encoding;
use crate::Error;

/// zstd's fastest regular level. On feed pages (a few KB of repetitive XML, or Base64) it
/// codes to the same size as the default level 3 (±1 % measured on inline and links archives)
/// for 9 % less of the order service's CPU in a catch-up that codes every page.
const ZSTD_LEVEL: i32 = 1;

/// `body` in `encoding`.
pub fn encode(encoding: Encoding, body: &[u8]) -> Result<Vec<u8>, Error> {
    // Coded pages are kept (archives for good): without the room reserved for the worst
    // case (zstd reserves more than the input), which would hold ten times their size.
    let mut coded = encode_reserved(encoding, body)?;
    coded.shrink_to_fit();
    Ok(coded)
}

fn encode_reserved(encoding: Encoding, body: &[u8]) -> Result<Vec<u8>, Error> {
    match encoding {
        Encoding::Identity => Ok(body.to_vec()),
        Encoding::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::default(),
            );
            gz.write_all(body).map_err(Error::Compress)?;
            gz.finish().map_err(Error::Compress)
        }
        Encoding::Zstd => ZSTD.with(|cell| {
            let mut slot = cell.borrow_mut();
            let compressor = match slot.as_mut() {
                Some(c) => c,
                None => {
                    slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(Error::Compress)?)
                }
            };
            compressor.compress(body).map_err(Error::Compress)
        }),
    }
}

/// A zstd `body` that decodes to exactly `size` bytes (a stored archive page), decoded.
pub fn decode_zstd(body: &[u8], size: usize) -> Result<Vec<u8>, Error> {
    let decoded = UNZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new().map_err(Error::Compress)?),
        };
        decompressor.decompress(body, size).map_err(Error::Compress)
    })?;
    if decoded.len() != size {
        return Err(Error::Compress(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("decoded {} bytes, expected {size}", decoded.len()),
        )));
    }
    Ok(decoded)
}

thread_local! {
    /// One zstd decoding context per thread, reused, for the same reason.
    static UNZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// One zstd context per thread, reused: creating one allocates and zeroes about a megabyte
    /// of tables, which cost more than compressing a 20-entry page (a catch-up profile had the
    /// order service 5 % in `memset` and `ZSTD_createCCtx`).
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn every_coding_round_trips() {
        let body = "<feed>".repeat(1000).into_bytes();
        let gz = encode(Encoding::Gzip, &body).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        assert!(gz.len() < body.len() / 10);
        let zst = encode(Encoding::Zstd, &body).unwrap();
        assert_eq!(zstd::bulk::decompress(&zst, body.len()).unwrap(), body);
        // The reused context starts each body afresh.
        let other = "<entry>".repeat(500).into_bytes();
        let zst = encode(Encoding::Zstd, &other).unwrap();
        assert_eq!(zstd::bulk::decompress(&zst, other.len()).unwrap(), other);
        assert_eq!(encode(Encoding::Identity, &body).unwrap(), body);
    }

    #[test]
    fn a_stored_body_decodes_to_its_size_or_is_refused() {
        let body = "<entry>".repeat(700).into_bytes();
        let zst = encode(Encoding::Zstd, &body).unwrap();
        assert_eq!(decode_zstd(&zst, body.len()).unwrap(), body);
        // Twice on one thread: the reused context starts afresh.
        assert_eq!(decode_zstd(&zst, body.len()).unwrap(), body);
        assert!(
            decode_zstd(&zst, body.len() - 1).is_err(),
            "larger than said"
        );
        assert!(
            decode_zstd(&zst, body.len() + 1).is_err(),
            "smaller than said"
        );
        assert!(
            decode_zstd(&zst[..zst.len() / 2], body.len()).is_err(),
            "cut"
        );
        assert!(decode_zstd(b"not zstd", body.len()).is_err());
    }
}
