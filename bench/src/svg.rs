//! A small hand-written SVG generator for the report: a line chart (log or linear x) and a
//! horizontal bar chart with vertical marker lines. Plain text out, no dependencies.

use std::fmt::Write as _;

const W: f64 = 760.0;
const FONT: &str = "font-family=\"sans-serif\" font-size=\"12\"";

/// A palette that stays readable in print and for common colour blindness (Okabe–Ito).
pub const COLORS: [&str; 8] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: &'static str,
    pub dashed: bool,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A label for an entry count or other large number: 1k, 100k, 1M, 10M.
pub fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

fn header(out: &mut String, h: f64, title: &str) {
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" {FONT}>"
    );
    let _ = writeln!(out, "<rect width=\"{W}\" height=\"{h}\" fill=\"white\"/>");
    let _ =
        writeln!(out, "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>", W / 2.0, esc(title));
}

/// A line chart. With `x_log`, x is plotted on a log10 scale and ticked at the data's x values.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, x_log: bool, series: &[Series]) -> String {
    let h = 460.0;
    let (left, right, top, bottom) = (70.0, 220.0, 40.0, 60.0);
    let (pw, ph) = (W - left - right, h - top - bottom);
    let fx = |x: f64| if x_log { x.max(1e-9).log10() } else { x };
    let pts = || series.iter().flat_map(|s| s.points.iter()).filter(|p| p.1.is_finite());
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut y1 = 0f64;
    for &(x, y) in pts() {
        x0 = x0.min(fx(x));
        x1 = x1.max(fx(x));
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let step = nice_step(y1.max(1.0), 6.0);
    let y1 = (y1 / step).ceil().max(1.0) * step;
    let px = |x: f64| left + (fx(x) - x0) / (x1 - x0) * pw;
    let py = |y: f64| top + ph - y / y1 * ph;

    let mut out = String::new();
    header(&mut out, h, title);
    // Grid and y ticks.
    let mut y = 0.0;
    while y <= y1 + step / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            py(y),
            left + pw,
            left - 6.0,
            py(y) + 4.0,
            y
        );
        y += step;
    }
    // X ticks: every distinct x of the data.
    let mut xs: Vec<f64> = pts().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let label = if x_log { si(x) } else { format!("{x}") };
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            px(x),
            top + ph,
            top + ph + 18.0,
            label
        );
    }
    let _ =
        writeln!(out, "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        left + pw / 2.0,
        h - 16.0,
        esc(x_label)
    );
    let _ = writeln!(
        out,
        "<text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        top + ph / 2.0,
        esc(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let path: Vec<String> =
            s.points.iter().filter(|p| p.1.is_finite()).map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let dash = if s.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        if !path.is_empty() {
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
                path.join(" "),
                s.color
            );
            for p in &path {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(out, "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{}\"/>", s.color);
            }
        }
        let ly = top + 10.0 + i as f64 * 20.0;
        let lx = left + pw + 12.0;
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>",
            lx + 22.0,
            s.color,
            lx + 28.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One bar.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub color: &'static str,
}

/// A horizontal bar chart with labelled vertical markers (targets).
pub fn bar_chart(title: &str, x_label: &str, bars: &[Bar], markers: &[(f64, String)]) -> String {
    let row = 22.0;
    let (left, right, top, bottom) = (250.0, 40.0, 40.0, 56.0);
    let h = top + bottom + row * bars.len() as f64;
    let pw = W - left - right;
    let vmax =
        bars.iter().map(|b| b.value).chain(markers.iter().map(|m| m.0)).filter(|v| v.is_finite()).fold(1.0, f64::max);
    let step = nice_step(vmax, 8.0);
    let vmax = (vmax / step).ceil() * step;
    let px = |v: f64| left + v / vmax * pw;
    let mut out = String::new();
    header(&mut out, h, title);
    let mut v = 0.0;
    while v <= vmax + step / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            px(v),
            h - bottom,
            h - bottom + 16.0,
            v
        );
        v += step;
    }
    for (i, b) in bars.iter().enumerate() {
        let y = top + i as f64 * row;
        let width = if b.value.is_finite() { px(b.value) - left } else { 0.0 };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{:.2}</text>",
            left - 8.0,
            y + row * 0.65,
            esc(&b.label),
            y + 3.0,
            row - 6.0,
            b.color,
            left + width + 4.0,
            y + row * 0.65,
            b.value
        );
    }
    for (i, (v, label)) in markers.iter().enumerate() {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#D55E00\" stroke-dasharray=\"4 3\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#D55E00\">{3}</text>",
            px(*v),
            h - bottom,
            top - 4.0 - (i % 2) as f64 * 0.0,
            esc(label)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        left + pw / 2.0,
        h - 14.0,
        esc(x_label)
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed() {
        let s = line_chart(
            "t <1>",
            "entries",
            "ns",
            true,
            &[Series {
                name: "a".into(),
                points: vec![(1e3, 10.0), (1e6, 30.0), (1e7, f64::NAN)],
                color: COLORS[0],
                dashed: true,
            }],
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("t &lt;1&gt;") && s.contains(">1k<") && s.contains(">1M<"));
        assert!(!s.contains("NaN"));
        let b = bar_chart(
            "b",
            "x floor",
            &[Bar { label: "x".into(), value: 2.5, color: COLORS[1] }],
            &[(4.0, "4×".into())],
        );
        assert!(b.contains("2.50") && b.contains("4×"));
        assert_eq!(si(1e7), "10M");
        assert_eq!(nice_step(37.0, 6.0), 10.0);
    }
}
