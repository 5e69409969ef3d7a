//! `ptq evaluate`'s outputs from one [`Evaluation`]: the JSON (everything), the Markdown (the
//! worst tensors), the chart, and the summary on stderr. Paths appear as file names only and
//! floats in their shortest round-trip form, so the same run writes the same bytes (DESIGN.md
//! Decision 5). JSON has no infinities: a non-finite dB value is written as the string `"inf"`,
//! `"-inf"` or `"nan"`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use ptq_pipeline::evaluate::{ENTRY_POINT_DROP_DB, Evaluation, Grid, OutputReport, TensorReport};
use serde_json::{Value, json};

use crate::plot::{Bar, format_db, sqnr_chart};

/// What was compared, as the user named it.
pub struct Source<'a> {
    pub float: &'a Path,
    /// `None`: quantized in memory (`--input_model`).
    pub quantized: Option<&'a Path>,
    pub calibration: Option<&'a Path>,
    pub list: &'a Path,
    pub labels: Option<&'a Path>,
}

pub struct Report<'a> {
    pub source: Source<'a>,
    pub evaluation: &'a Evaluation,
    /// How many tensors the Markdown and the chart show.
    pub top: usize,
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// A dB value (or any ratio) for JSON: a number when finite.
fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("nan")
    } else if v > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

fn fraction(count: usize, total: usize) -> f64 {
    if total == 0 { f64::NAN } else { count as f64 / total as f64 }
}

fn encoding_json(grid: &Grid) -> Value {
    match grid {
        Grid::Float16 => json!({ "dtype": "float16", "bitwidth": 16 }),
        Grid::Int(e) => {
            let channels = 0..e.scales.len();
            let (min, max) = channels
                .map(|c| e.min_max(c))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
            let one = e.scales.len() == 1;
            json!({
                "dtype": e.storage_type().name(),
                "bitwidth": e.bitwidth,
                "scale": if one { json!(e.scales[0]) } else { json!(e.scales) },
                "zero_point": if one { json!(e.zero_points[0]) } else { json!(e.zero_points) },
                "axis": e.axis,
                "min": min,
                "max": max,
            })
        }
    }
}

/// `uint8 scale 0.0123 zp 128`, `int8 per-channel (axis 1, 16 scales)`, `float16`.
fn encoding_text(grid: &Grid) -> String {
    match grid {
        Grid::Float16 => "float16".into(),
        Grid::Int(e) if e.scales.len() == 1 => {
            format!("{} scale {:.4e} zp {}", e.storage_type().name(), e.scales[0], e.zero_points[0])
        }
        Grid::Int(e) => format!(
            "{} per-channel (axis {}, {} scales)",
            e.storage_type().name(),
            e.axis.map_or("?".into(), |a| a.to_string()),
            e.scales.len()
        ),
    }
}

fn output_json(o: &OutputReport) -> Value {
    let top1 = o.top1.map(|t| {
        json!({
            "float": number(fraction(t.float_correct, t.count)),
            "quantized": number(fraction(t.quantized_correct, t.count)),
            "agreement": number(fraction(t.agree, t.count)),
            "samples": t.count,
        })
    });
    json!({
        "name": o.name,
        "sqnr_db": number(o.sqnr.db()),
        "cosine_mean": number(o.cosines.mean()),
        "cosine_min": number(o.cosines.min()),
        "top1": top1,
    })
}

fn tensor_json(t: &TensorReport) -> Value {
    json!({
        "name": t.name,
        "op_type": t.op_type,
        "encoding": encoding_json(&t.grid),
        "cumulative_sqnr_db": number(t.cumulative_db),
        "own_sqnr_db": t.own_db.map(number),
        "entry_point": t.entry_point,
    })
}

/// `|` would end a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn top1_text(o: &OutputReport) -> Option<String> {
    let t = o.top1?;
    Some(format!(
        "top-1 {:.4} float, {:.4} quantized, agreement {:.4}",
        fraction(t.float_correct, t.count),
        fraction(t.quantized_correct, t.count),
        fraction(t.agree, t.count)
    ))
}

impl Report<'_> {
    fn quantized_name(&self) -> String {
        match self.source.quantized {
            Some(q) => file_name(q),
            None => format!("{} quantized in memory", file_name(self.source.float)),
        }
    }

    pub fn json(&self) -> Result<String> {
        let e = self.evaluation;
        let doc = json!({
            "float_model": file_name(self.source.float),
            "quantized_model": self.source.quantized.map(file_name),
            "calibration_list": self.source.calibration.map(file_name),
            "input_list": file_name(self.source.list),
            "labels": self.source.labels.map(file_name),
            "samples": e.samples,
            "outputs": e.outputs.iter().map(output_json).collect::<Vec<_>>(),
            "entry_point_drop_db": ENTRY_POINT_DROP_DB,
            "tensors": e.tensors.iter().map(tensor_json).collect::<Vec<_>>(),
            "notes": e.notes,
        });
        Ok(serde_json::to_string_pretty(&doc)? + "\n")
    }

    pub fn markdown(&self) -> String {
        let e = self.evaluation;
        let mut md = String::from("# ptq evaluate\n\n");
        let _ = writeln!(
            md,
            "Float model `{}` against `{}`, on {} sample(s) of `{}`.\n",
            file_name(self.source.float),
            self.quantized_name(),
            e.samples,
            file_name(self.source.list)
        );
        md.push_str("## Outputs\n\n");
        md.push_str("| output | SQNR (dB) | cosine mean | cosine min | top-1 float | top-1 quantized | top-1 agreement |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for o in &e.outputs {
            let top = |f: fn(&ptq_pipeline::evaluate::Top1Counts) -> usize| {
                o.top1.map_or("–".to_owned(), |t| format!("{:.4}", fraction(f(&t), t.count)))
            };
            let _ = writeln!(
                md,
                "| `{}` | {} | {:.6} | {:.6} | {} | {} | {} |",
                cell(&o.name),
                format_db(o.sqnr.db()),
                o.cosines.mean(),
                o.cosines.min(),
                top(|t| t.float_correct),
                top(|t| t.quantized_correct),
                top(|t| t.agree)
            );
        }
        let shown = e.tensors.len().min(self.top);
        let _ = writeln!(
            md,
            "\n## Tensors, worst first ({shown} of {})\n\n\
             *cumulative*: the quantized run's value after the tensor's own quantization (what its readers see) \
             against the float run's — the error accumulated up to here. *own*: the float value through only its \
             own quantization — the error that enters here. **entry** marks an own SQNR {ENTRY_POINT_DROP_DB} dB or \
             more below the median.\n",
            e.tensors.len()
        );
        if e.tensors.is_empty() {
            md.push_str("No quantized tensor to compare.\n");
        } else {
            md.push_str("| # | tensor | op | encoding | cumulative SQNR (dB) | own SQNR (dB) | |\n");
            md.push_str("|---:|---|---|---|---:|---:|---|\n");
            for (i, t) in e.tensors.iter().take(shown).enumerate() {
                let _ = writeln!(
                    md,
                    "| {} | `{}` | {} | {} | {} | {} | {} |",
                    i + 1,
                    cell(&t.name),
                    cell(&t.op_type),
                    encoding_text(&t.grid),
                    format_db(t.cumulative_db),
                    t.own_db.map_or("?".into(), format_db),
                    if t.entry_point { "**entry**" } else { "" }
                );
            }
            md.push_str("\n![per-tensor SQNR](evaluate.png)\n");
        }
        if !e.notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            for n in &e.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }

    pub fn chart(&self, png: &Path, svg: &Path) -> Result<()> {
        let e = self.evaluation;
        let bars: Vec<Bar> = e
            .tensors
            .iter()
            .take(self.top)
            .map(|t| Bar {
                label: &t.name,
                cumulative: t.cumulative_db,
                own: t.own_db,
                entry_point: t.entry_point,
            })
            .collect();
        let title = format!(
            "SQNR per tensor, worst {} of {}: {} vs {}",
            bars.len(),
            e.tensors.len(),
            self.quantized_name(),
            file_name(self.source.float)
        );
        sqnr_chart(&title, &bars, png, svg)
    }

    pub fn summary(&self, dir: &Path, elapsed: Duration) -> String {
        let e = self.evaluation;
        let mut s = format!(
            "ptq evaluate: {} against {}, {} sample(s) of {} in {:.2} s\n",
            self.quantized_name(),
            file_name(self.source.float),
            e.samples,
            file_name(self.source.list),
            elapsed.as_secs_f64()
        );
        for o in &e.outputs {
            let _ = write!(
                s,
                "  output `{}`: SQNR {} dB, cosine mean {:.6} (min {:.6})",
                o.name,
                format_db(o.sqnr.db()),
                o.cosines.mean(),
                o.cosines.min()
            );
            if let Some(t) = top1_text(o) {
                let _ = write!(s, ", {t}");
            }
            s.push('\n');
        }
        if e.tensors.is_empty() {
            s.push_str("  no quantized tensor to compare\n");
        } else {
            let _ = writeln!(s, "  worst tensors of {} (cumulative / own SQNR, dB):", e.tensors.len());
            for t in e.tensors.iter().take(10) {
                let _ = writeln!(
                    s,
                    "    {:>7} / {:>7}  `{}` ({}, {}){}",
                    format_db(t.cumulative_db),
                    t.own_db.map_or("?".into(), format_db),
                    t.name,
                    t.op_type,
                    encoding_text(&t.grid),
                    if t.entry_point { "  ← error enters here" } else { "" }
                );
            }
        }
        for n in &e.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        let _ = write!(
            s,
            "  wrote {}",
            crate::evaluate::FILES.map(|f| dir.join(f).display().to_string()).join(", ")
        );
        s
    }
}
