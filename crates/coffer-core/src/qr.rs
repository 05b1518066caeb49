//! The picture a virtual MFA device is provisioned from (`QRCodePNG`): the QR code of its
//! `otpauth://` URI as a PNG. The QR matrix comes from the `qrcode` crate (no image features);
//! the PNG encoder is ours, because one kind of picture needs little: the signature, `IHDR`
//! (1-bit grayscale), one `IDAT` holding a zlib stream of stored (uncompressed) deflate blocks,
//! and `IEND`, each chunk with its CRC-32 (ISO 3309), the stream with its Adler-32 (RFC 1950).
//!
//! The picture carries the device's seed, so every buffer of ours that holds it is zeroized
//! (the `qrcode` crate's own intermediate buffers are not ours to wipe).

use coffer_crypto::SecretBytes;
use zeroize::Zeroizing;

use crate::CoreError;

/// Pixels per QR module: a 41-module code (the usual size of an otpauth URI) is 245 px wide.
pub(crate) const MODULE_PIXELS: usize = 5;
/// The light margin around the code, in modules (ISO/IEC 18004 asks for four).
pub(crate) const QUIET_ZONE: usize = 4;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// The largest stored deflate block (RFC 1951 §3.2.4: LEN is 16 bits).
const STORED_BLOCK_MAX: usize = 65_535;

/// The QR code of `text` as a square matrix: its width in modules and whether each module
/// (row by row) is dark.
pub(crate) fn qr_matrix(text: &[u8]) -> Result<(usize, Zeroizing<Vec<bool>>), CoreError> {
    let code = qrcode::QrCode::new(text)
        .map_err(|e| CoreError::Internal(format!("the QR code cannot be made: {e}")))?;
    let width = code.width();
    let dark = code
        .into_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Ok((width, Zeroizing::new(dark)))
}

/// A PNG picture of the QR code of `text`.
pub(crate) fn qr_png(text: &[u8]) -> Result<SecretBytes, CoreError> {
    let (width, dark) = qr_matrix(text)?;
    Ok(png_of_modules(width, &dark))
}

/// Renders a square module matrix (`dark[y * width + x]`) as a 1-bit grayscale PNG with a
/// quiet zone, `MODULE_PIXELS` pixels per module.
pub(crate) fn png_of_modules(width: usize, dark: &[bool]) -> SecretBytes {
    let side = (width + 2 * QUIET_ZONE) * MODULE_PIXELS;
    let row_bytes = side.div_ceil(8);
    let mut raw = Zeroizing::new(Vec::with_capacity(side * (row_bytes + 1)));
    for y in 0..side {
        raw.push(0); // filter type None
        let start = raw.len();
        raw.resize(start + row_bytes, 0);
        for x in 0..side {
            // Grayscale 1-bit: 1 is white. Pixels fill each byte from its high bit.
            if !module_at(width, dark, x / MODULE_PIXELS, y / MODULE_PIXELS) {
                raw[start + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }

    let side32 = u32::try_from(side).unwrap_or(u32::MAX);
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&side32.to_be_bytes());
    ihdr.extend_from_slice(&side32.to_be_bytes());
    // Bit depth 1, colour type 0 (grayscale), deflate, filter method 0, no interlace.
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]);

    let idat = zlib_stored(&raw);
    let mut png = Zeroizing::new(Vec::with_capacity(idat.len() + 64));
    png.extend_from_slice(&PNG_SIGNATURE);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    SecretBytes::new(std::mem::take(&mut *png))
}

/// Whether the module at (`mx`, `my`) of the padded picture is dark (the quiet zone is light).
fn module_at(width: usize, dark: &[bool], mx: usize, my: usize) -> bool {
    let (Some(x), Some(y)) = (mx.checked_sub(QUIET_ZONE), my.checked_sub(QUIET_ZONE)) else {
        return false;
    };
    x < width && y < width && dark.get(y * width + x).copied().unwrap_or(false)
}

/// Appends one PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// A zlib stream (RFC 1950) of `data` in stored deflate blocks (RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let blocks = data.len().div_ceil(STORED_BLOCK_MAX).max(1);
    let mut out = Zeroizing::new(Vec::with_capacity(data.len() + 5 * blocks + 6));
    // CMF: deflate with a 32K window; FLG: no dictionary, check bits so CMF·256+FLG ≡ 0 mod 31.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut rest = data;
    loop {
        let take = rest.len().min(STORED_BLOCK_MAX);
        let (block, tail) = rest.split_at(take);
        let last = tail.is_empty();
        out.push(u8::from(last)); // BFINAL, BTYPE = 00 (stored)
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
        rest = tail;
        if last {
            break;
        }
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// The CRC-32 table of the reflected polynomial 0xEDB88320 (PNG specification, Annex D).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// CRC-32 of the concatenation of `parts`.
pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for part in parts {
        for b in *part {
            c = CRC_TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8);
        }
    }
    c ^ 0xffff_ffff
}

/// Adler-32 (RFC 1950 §8).
pub(crate) fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before `b` could overflow (zlib's NMAX).
    for block in data.chunks(5552) {
        for byte in block {
            a += u32::from(*byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(&[b"123456789"]), 0xcbf4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xcbf4_3926);
        assert_eq!(crc32(&[b"IEND"]), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(b""), 1);
        let big = vec![0xffu8; 100_000];
        // Reference value from zlib's adler32() of 100 000 bytes of 0xff.
        let (mut a, mut b) = (1u64, 0u64);
        for byte in &big {
            a = (a + u64::from(*byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(&big), u32::try_from((b << 16) | a).unwrap());
    }

    /// A PNG decoder for exactly what `png_of_modules` writes, checking everything on the way.
    struct Decoded {
        width: u32,
        height: u32,
        /// One bool per pixel, true for white.
        pixels: Vec<bool>,
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[..4].try_into().unwrap())
    }

    fn decode(png: &[u8]) -> Decoded {
        assert_eq!(&png[..8], &PNG_SIGNATURE, "signature");
        let mut at = 8;
        let mut chunks = Vec::new();
        while at < png.len() {
            let len = be32(&png[at..]) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            let crc = be32(&png[at + 8 + len..]);
            assert_eq!(crc, crc32(&[kind, data]), "CRC of {:?}", kind);
            chunks.push((kind.to_vec(), data.to_vec()));
            at += 12 + len;
        }
        assert_eq!(at, png.len(), "no trailing bytes");
        let kinds: Vec<&[u8]> = chunks.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(kinds, [b"IHDR".as_slice(), b"IDAT", b"IEND"]);
        let ihdr = &chunks[0].1;
        assert_eq!(ihdr.len(), 13);
        let (width, height) = (be32(&ihdr[0..]), be32(&ihdr[4..]));
        assert_eq!(
            &ihdr[8..],
            &[1, 0, 0, 0, 0],
            "1-bit grayscale, no interlace"
        );
        assert!(chunks[2].1.is_empty());

        // zlib: header, stored blocks, Adler-32.
        let z = &chunks[1].1;
        assert_eq!((u16::from(z[0]) << 8 | u16::from(z[1])) % 31, 0, "FCHECK");
        assert_eq!(z[0] & 0x0f, 8, "deflate");
        assert_eq!(z[1] & 0x20, 0, "no preset dictionary");
        let mut raw = Vec::new();
        let mut at = 2;
        loop {
            let header = z[at];
            assert_eq!(header >> 1, 0, "stored block");
            let len = u16::from_le_bytes([z[at + 1], z[at + 2]]);
            let nlen = u16::from_le_bytes([z[at + 3], z[at + 4]]);
            assert_eq!(nlen, !len, "NLEN");
            raw.extend_from_slice(&z[at + 5..at + 5 + usize::from(len)]);
            at += 5 + usize::from(len);
            if header & 1 == 1 {
                break;
            }
        }
        assert_eq!(be32(&z[at..]), adler32(&raw), "Adler-32");
        assert_eq!(at + 4, z.len());

        let row_bytes = (width as usize).div_ceil(8);
        assert_eq!(raw.len(), height as usize * (row_bytes + 1));
        let mut pixels = Vec::new();
        for row in raw.chunks(row_bytes + 1) {
            assert_eq!(row[0], 0, "filter None");
            for x in 0..width as usize {
                pixels.push(row[1 + x / 8] & (0x80 >> (x % 8)) != 0);
            }
        }
        Decoded {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn the_png_decodes_to_the_qr_matrix() {
        let uri = b"otpauth://totp/coffer:phone@111122223333?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=coffer";
        let (width, dark) = qr_matrix(uri).unwrap();
        assert_eq!(dark.len(), width * width);
        let png = qr_png(uri).unwrap();
        let img = decode(png.expose());
        let side = (width + 2 * QUIET_ZONE) * MODULE_PIXELS;
        assert_eq!((img.width as usize, img.height as usize), (side, side));
        for y in 0..side {
            for x in 0..side {
                let (mx, my) = (x / MODULE_PIXELS, y / MODULE_PIXELS);
                let inside = (QUIET_ZONE..QUIET_ZONE + width).contains(&mx)
                    && (QUIET_ZONE..QUIET_ZONE + width).contains(&my);
                let expect_dark = inside && dark[(my - QUIET_ZONE) * width + (mx - QUIET_ZONE)];
                assert_eq!(
                    !img.pixels[y * side + x],
                    expect_dark,
                    "pixel ({x}, {y}), module ({mx}, {my})"
                );
            }
        }
        // The finder pattern's corner is dark, the quiet zone light.
        assert!(dark[0]);
        assert!(img.pixels[0]);
    }

    #[test]
    fn large_pictures_span_several_stored_blocks() {
        let width = 177; // version 40
        let dark: Vec<bool> = (0..width * width).map(|i| i % 3 == 0).collect();
        let png = png_of_modules(width, &dark);
        let img = decode(png.expose());
        let side = (width + 2 * QUIET_ZONE) * MODULE_PIXELS;
        assert_eq!(img.width as usize, side);
        assert!(side * side.div_ceil(8) > STORED_BLOCK_MAX);
        let (x, y) = (QUIET_ZONE * MODULE_PIXELS, QUIET_ZONE * MODULE_PIXELS);
        assert!(!img.pixels[y * side + x], "module 0 is dark");
        assert!(
            img.pixels[y * side + x + MODULE_PIXELS],
            "module 1 is light"
        );
    }
}
