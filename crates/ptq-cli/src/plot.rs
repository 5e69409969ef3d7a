//! `evaluate.png` / `evaluate.svg`: a horizontal bar chart of the worst tensors' SQNR, cumulative
//! and own side by side. Text is drawn with DejaVu Sans bundled in the binary (assets/, with its
//! licence), so the chart renders on machines without any font installed (docs/rust-stack.md,
//! "Plots"); the SVG names the font family and leaves drawing the glyphs to the viewer.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

const CUMULATIVE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const OWN: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const ENTRY: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Labels longer than this keep their end, where tensor names differ.
const LABEL_CHARS: usize = 60;

/// One tensor's bars.
pub struct Bar<'a> {
    pub label: &'a str,
    pub cumulative: f64,
    pub own: Option<f64>,
    /// Drawn in the entry-point colour.
    pub entry_point: bool,
}

fn font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, DEJAVU_SANS).is_ok());
    if ok { Ok(()) } else { Err(anyhow!("the bundled font DejaVuSans.ttf cannot be read")) }
}

/// Writes the chart of `bars` (worst first, drawn top down) as PNG and SVG.
pub fn sqnr_chart(title: &str, bars: &[Bar], png: &Path, svg: &Path) -> Result<()> {
    font()?;
    let longest = bars.iter().map(|b| short(b.label).chars().count()).max().unwrap_or(10);
    let label_width = (longest as u32 * 7 + 20).clamp(120, 460);
    let size = (label_width + 760, 140 + 28 * bars.len().max(1) as u32);
    draw(BitMapBackend::new(png, size).into_drawing_area(), title, bars, label_width)
        .map_err(|e| anyhow!("cannot draw {}: {e}", png.display()))?;
    draw(SVGBackend::new(svg, size).into_drawing_area(), title, bars, label_width)
        .map_err(|e| anyhow!("cannot draw {}: {e}", svg.display()))?;
    Ok(())
}

fn short(label: &str) -> String {
    let n = label.chars().count();
    if n <= LABEL_CHARS {
        return label.to_owned();
    }
    let tail: String = label.chars().skip(n - (LABEL_CHARS - 1)).collect();
    format!("…{tail}")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    bars: &[Bar],
    label_width: u32,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let values = bars.iter().flat_map(|b| [Some(b.cumulative), b.own]).flatten().filter(|v| v.is_finite());
    let (lo, hi) = values.fold((0.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Room on the right for the legend, over the worst (shortest) bars at the top.
    let hi = hi * 1.3;
    let n = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_width)
        .build_cartesian_2d(lo..hi, 0.0..n)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("SQNR (dB), higher is better")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    // Infinite SQNR (no error) reaches the right edge, −inf the left; NaN draws nothing.
    let clamp = |v: f64| if v.is_nan() { lo } else { v.clamp(lo, hi) };
    let row = |r: usize| n - 1.0 - r as f64;
    chart
        .draw_series(bars.iter().enumerate().map(|(r, b)| {
            Rectangle::new([(lo, row(r) + 0.52), (clamp(b.cumulative), row(r) + 0.9)], CUMULATIVE.filled())
        }))
        .map_err(e)?
        .label("cumulative: quantized run vs float")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], CUMULATIVE.filled()));
    let own_bars = bars.iter().enumerate().filter_map(|(r, b)| Some((r, b.own?, b.entry_point)));
    chart
        .draw_series(own_bars.clone().filter(|b| !b.2).map(|(r, own, _)| {
            Rectangle::new([(lo, row(r) + 0.1), (clamp(own), row(r) + 0.48)], OWN.filled())
        }))
        .map_err(e)?
        .label("own: only this tensor quantized")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], OWN.filled()));
    if bars.iter().any(|b| b.entry_point) {
        chart
            .draw_series(own_bars.filter(|b| b.2).map(|(r, own, _)| {
                Rectangle::new([(lo, row(r) + 0.1), (clamp(own), row(r) + 0.48)], ENTRY.filled())
            }))
            .map_err(e)?
            .label("own, an entry point of error")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], ENTRY.filled()));
    }
    let value_style = TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (r, b) in bars.iter().enumerate() {
        for (v, y) in [(Some(b.cumulative), row(r) + 0.71), (b.own, row(r) + 0.29)] {
            let Some(v) = v else { continue };
            let (x, y) = chart.backend_coord(&(clamp(v), y));
            root.draw(&Text::new(format_db(v), (x + 3, y), value_style.clone())).map_err(e)?;
        }
        let (x, y) = chart.backend_coord(&(lo, row(r) + 0.5));
        let style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(short(b.label), (x - 8, y), style)).map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

/// `12.3`, `inf`, `-inf`, `NaN`.
pub fn format_db(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_keep_their_end() {
        assert_eq!(short("conv1"), "conv1");
        let long = format!("/model/{}/Add_output_0", "x".repeat(80));
        let s = short(&long);
        assert_eq!(s.chars().count(), LABEL_CHARS);
        assert!(s.starts_with('…') && s.ends_with("/Add_output_0"), "{s}");
    }

    #[test]
    fn renders_png_and_svg_with_the_bundled_font() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("c.png"), dir.path().join("c.svg"));
        let bars = [
            Bar { label: "conv<1>", cumulative: 12.5, own: Some(40.0), entry_point: false },
            Bar { label: "relu", cumulative: f64::INFINITY, own: None, entry_point: false },
            Bar { label: "mask", cumulative: f64::NAN, own: Some(-3.0), entry_point: true },
        ];
        sqnr_chart("t", &bars, &png, &svg).unwrap();
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("conv&lt;1&gt;") && text.contains("mask") && text.contains("inf"), "{text}");
    }
}
