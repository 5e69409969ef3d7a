//! An input list and the data file it names, as `--input_list` reads them: the list parsed,
//! bound to a two-input model (one symbolic dimension, so `.npy` headers matter), and every
//! sample read.
//!
//! Input layout: one byte of flags (bit 0: `--use_native_input_files`, bit 1:
//! `--allow_nonfinite`), the list text up to the first NUL byte, then the contents of the data
//! file, written both as `d.raw` and `d.npy` beside the list.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use ptq_data::{InputList, InputSpec, ReadOptions, Samples};
use ptq_ir::{DataType, Dim};

static DIR: LazyLock<std::path::PathBuf> = LazyLock::new(|| ptq_fuzz::scratch("input_list"));

/// At most this many samples are read per input, so a long list stays quick.
const MAX_SAMPLES: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (list_text, file) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let list = DIR.join("list.txt");
    for (name, bytes) in [("list.txt", list_text), ("d.raw", file), ("d.npy", file)] {
        std::fs::write(DIR.join(name), bytes).unwrap();
    }
    let Ok(parsed) = InputList::parse(&list) else { return };
    let inputs = [
        InputSpec {
            name: "x".into(),
            dtype: DataType::Float,
            shape: vec![Dim::Symbolic("n".into()), Dim::Fixed(2)],
        },
        InputSpec { name: "y".into(), dtype: DataType::Uint8, shape: vec![Dim::Fixed(4)] },
    ];
    let opts = ReadOptions { native: flags & 1 != 0, allow_nonfinite: flags & 2 != 0, ..Default::default() };
    let Ok(samples) = Samples::new(parsed, &inputs, opts) else { return };
    for i in 0..samples.len().min(MAX_SAMPLES) {
        let _ = samples.read(i);
    }
});
