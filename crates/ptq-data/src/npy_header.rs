//! The checks a `.npy` header gets before npyz reads it: npyz allocates whatever header length
//! the file claims and parses nested brackets with exponential backtracking (both found by
//! fuzzing), so a damaged file must be refused first.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::Error;
use crate::read::file_error;

/// Opens a `.npy` file for npyz once its header length is known to fit in the file: npyz
/// allocates whatever length the file claims (up to 4 GiB) before reading the header.
pub(crate) fn open_npy(path: &Path) -> Result<BufReader<File>, Error> {
    let mut file = File::open(path).map_err(|err| file_error(path, err))?;
    let size = file.metadata().map_err(|err| file_error(path, err))?.len();
    let mut prefix = Vec::with_capacity(12);
    (&mut file).take(12).read_to_end(&mut prefix).map_err(|err| file_error(path, err))?;
    // Magic (6 bytes), version (2), then the header length: u16 in version 1, u32 after.
    let claimed = match (prefix.get(..6), prefix.get(6), prefix.get(8..)) {
        (Some(b"\x93NUMPY"), Some(1), Some(len)) if len.len() >= 2 => {
            Some((10, 10 + u64::from(u16::from_le_bytes([len[0], len[1]]))))
        }
        (Some(b"\x93NUMPY"), Some(2 | 3), Some(len)) if len.len() == 4 => {
            Some((12, 12 + u64::from(u32::from_le_bytes([len[0], len[1], len[2], len[3]]))))
        }
        _ => None, // npyz says what is wrong with it
    };
    if let Some((start, end)) = claimed {
        let bad = |reason: String| Error::Npy { path: path.to_path_buf(), reason };
        if end > size {
            return Err(bad(format!(
                "its header claims to end at byte {end}, past the end of the file ({size} bytes)"
            )));
        }
        // The header text: what the prefix read of it (version 1 starts inside the prefix), then the rest.
        let mut text = prefix[start..(end as usize).min(prefix.len())].to_vec();
        (&mut file)
            .take(end.saturating_sub(prefix.len() as u64))
            .read_to_end(&mut text)
            .map_err(|err| file_error(path, err))?;
        let depth = nesting(&text);
        if depth > MAX_NESTING {
            return Err(bad(format!(
                "its header nests brackets {depth} deep; a .npy header is a flat dict (numpy writes at most \
                 a few levels), so the file is damaged"
            )));
        }
    }
    file.rewind().map_err(|err| file_error(path, err))?;
    Ok(BufReader::new(file))
}

/// The deepest bracket nesting a `.npy` header may have: numpy's own headers reach 2 (a shape
/// tuple) and nested structured dtypes a few more; npyz's header parser backtracks
/// exponentially in the depth, so a damaged header with many brackets would never finish.
const MAX_NESTING: usize = 8;

/// The deepest nesting of `(`, `[` and `{` in `text`, outside quoted strings.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0, None);
    for &b in text {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(' | b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, b')' | b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}
