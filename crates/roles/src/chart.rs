//! Line charts as standalone SVG: the experiment report page and
//! `powerplug replay --chart` draw with it. No scripts, no dependencies: an
//! SVG opens in any browser and embeds in HTML as it is.

use std::fmt::Write;

/// One line: a name for the legend, its y values (one per x), and its look:
/// lines of one strategy share a colour, its second figure is dashed.
pub struct Line {
    pub name: String,
    pub ys: Vec<f64>,
    pub colour: usize,
    pub dashed: bool,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub xs: Vec<f64>,
    pub lines: Vec<Line>,
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 720.0;
const H: f64 = 360.0;
/// Margins around the plot: axis labels left and below, the legend right.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step for about `n` ticks over `span`.
fn step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let magnitude = 10f64.powf(raw.log10().floor());
    let r = raw / magnitude;
    let nice = if r < 1.5 {
        1.0
    } else if r < 3.5 {
        2.0
    } else if r < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn label(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart<'_> {
    pub fn svg(&self) -> String {
        let (x0, x1) = bounds(self.xs.iter().copied());
        let (mut y0, mut y1) = bounds(self.lines.iter().flat_map(|l| l.ys.iter().copied()));
        y0 = y0.min(0.0);
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let sx = |x: f64| {
            LEFT + if x1 > x0 {
                (x - x0) / (x1 - x0) * pw
            } else {
                0.0
            }
        };
        let sy = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            s,
            r#"<rect width="{W}" height="{H}" fill="white"/><text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#,
            escape(self.title)
        );
        let dy = step(y1 - y0, 5.0);
        let mut y = (y0 / dy).ceil() * dy;
        while y <= y1 + dy * 1e-9 {
            let py = sy(y);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                py + 4.0,
                label(y)
            );
            y += dy;
        }
        let dx = step(x1 - x0, 6.0);
        let mut x = (x0 / dx).ceil() * dx;
        while x <= x1 + dx * 1e-9 {
            let px = sx(x);
            let _ = write!(
                s,
                r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
                TOP + ph + 16.0,
                label(x)
            );
            x += dx;
        }
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/><text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>"##,
            LEFT + pw / 2.0,
            H - 12.0,
            escape(self.x_label),
            TOP + ph / 2.0,
            escape(self.y_label)
        );
        for (i, line) in self.lines.iter().enumerate() {
            let colour = COLOURS[line.colour % COLOURS.len()];
            let dash = if line.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let points: Vec<String> = self
                .xs
                .iter()
                .zip(&line.ys)
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|(&x, &y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
                points.join(" ")
            );
            let ly = TOP + 14.0 + 18.0 * i as f64;
            let _ = write!(
                s,
                r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="3"{dash}/><text x="{}" y="{}">{}</text>"#,
                W - RIGHT + 12.0,
                W - RIGHT + 32.0,
                W - RIGHT + 38.0,
                ly + 4.0,
                escape(&line.name)
            );
        }
        s.push_str("</svg>");
        s
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
        .unwrap_or((0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_polyline_per_line_with_escaped_names() {
        let chart = Chart {
            title: "bills",
            x_label: "minutes",
            y_label: "tokens",
            xs: vec![0.0, 1.0, 2.0],
            lines: vec![
                Line {
                    name: "a<b".into(),
                    ys: vec![0.0, 5.0, 9.0],
                    colour: 0,
                    dashed: false,
                },
                Line {
                    name: "c".into(),
                    ys: vec![0.0, 7.0, 14.0],
                    colour: 0,
                    dashed: true,
                },
            ],
        };
        let svg = chart.svg();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            2,
            "the dashed line and its legend"
        );
        assert!(svg.contains("a&lt;b"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
