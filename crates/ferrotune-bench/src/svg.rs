//! Hand-written SVG line plots for the report: per sampler, the median of a quantity against
//! the trial number as a line and its interquartile range as a shaded band, with axes, ticks,
//! a legend and a title. No plotting dependency: the output is a few hundred lines of plain
//! SVG 1.1 that any browser and GitHub render.

use std::fmt::Write;

/// The Okabe–Ito palette (M. Okabe and K. Ito, "Color Universal Design", 2002; recommended by
/// B. Wong, "Points of view: Color blindness", *Nature Methods* 8, 2011, p. 441), without
/// its yellow, which is too light on white, reordered so that neighbours differ most.
/// After these seven colors the lines repeat them dashed (see [`DASHES`]).
pub const PALETTE: [&str; 7] = [
    "#0072B2", // blue
    "#E69F00", // orange
    "#009E73", // bluish green
    "#D55E00", // vermillion
    "#56B4E9", // sky blue
    "#CC79A7", // reddish purple
    "#000000", // black
];

/// Dash patterns for the second and third round through [`PALETTE`], so that even more
/// samplers stay distinguishable.
pub const DASHES: [&str; 3] = ["", "8 4", "2 3"];

/// One sampler's curve: at each x, the median and the quartiles across seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend text (a sampler label; escaped on output).
    pub label: String,
    /// The index of its color and dash pattern, so that a sampler keeps its style across
    /// the plots of different problems.
    pub style: usize,
    /// (x, median, lower quartile, upper quartile), x increasing.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A plot: a title, axis labels and the series.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    /// The title (a problem name; escaped on output).
    pub title: String,
    /// A line under the title saying what is drawn.
    pub subtitle: String,
    /// The x axis label.
    pub x_label: String,
    /// The y axis label; ", log scale" is appended when the axis is logarithmic.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
}

/// Escapes text for SVG/XML content and attribute values: the five predefined entities, and
/// control characters that XML 1.0 forbids replaced by U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Rounds `x` (> 0) to the nearest "nice" number: 1, 2 or 5 (or 10) times a power of ten
/// (P. S. Heckbert, "Nice numbers for graph labels", *Graphics Gems*, 1990, pp. 61–63), the
/// tick spacing that keeps labels short.
fn nice(x: f64) -> f64 {
    let exponent = x.log10().floor();
    let fraction = x / 10f64.powf(exponent);
    let nice_fraction = match fraction {
        f if f < 1.5 => 1.0,
        f if f < 3.0 => 2.0,
        f if f < 7.0 => 5.0,
        _ => 10.0,
    };
    nice_fraction * 10f64.powf(exponent)
}

/// The exact decimal text of m·10^e (`10f64.powi(-3)` would print 0.0010000000000000002),
/// in scientific notation outside 0.001 ..= 50000.
fn decimal(m: u32, e: i32) -> String {
    match e {
        -3..=-1 => format!("0.{}{m}", "0".repeat((-e - 1) as usize)),
        0..=4 => format!("{m}{}", "0".repeat(e as usize)),
        _ => format!("{m}e{e}"),
    }
}

/// An axis: the data range it spans (in log10 units when `log`) and its ticks as
/// (position in axis units, label).
#[derive(Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis over [lo, hi] with about `n` nice ticks (Heckbert 1990).
    fn linear(lo: f64, hi: f64, n: usize) -> Axis {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            let pad = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
            (lo - pad, hi + pad)
        };
        let step = nice((hi - lo) / (n.max(2) - 1) as f64);
        let start = (lo / step).floor() * step;
        let end = (hi / step).ceil() * step;
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        let mut ticks = Vec::new();
        // At most 50 ticks, in case the step is below the values' resolution.
        for k in 0..50 {
            let v = start + f64::from(k) * step;
            if v > end + step * 1e-9 {
                break;
            }
            // Avoid printing "-0".
            let shown = if v.abs() < step * 1e-9 { 0.0 } else { v };
            ticks.push((v, format!("{shown:.decimals$}")));
        }
        Axis {
            lo: start,
            hi: end,
            log: false,
            ticks,
        }
    }

    /// A log10 axis over [lo, hi] (both > 0) with ticks at powers of ten, every one or every
    /// few decades so that there are at most about eight; over at most two decades also at
    /// 2 and 5 times each power, so that short ranges still get a few labels.
    fn log10(lo: f64, hi: f64) -> Axis {
        let a = lo.log10().floor();
        let mut b = hi.log10().ceil();
        if b <= a {
            b = a + 1.0;
        }
        let step = ((b - a) / 8.0).ceil().max(1.0);
        let mantissas: &[u32] = if b - a <= 2.0 { &[1, 2, 5] } else { &[1] };
        let mut ticks = Vec::new();
        let mut e = a;
        while e <= b + 1e-9 {
            for &m in mantissas {
                let position = e + f64::from(m).log10();
                if position <= b + 1e-9 {
                    ticks.push((position, decimal(m, e as i32)));
                }
            }
            e += step;
        }
        Axis {
            lo: a,
            hi: b,
            log: true,
            ticks,
        }
    }

    /// The value in axis units.
    fn unit(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    /// The fraction 0–1 of the way along the axis.
    fn fraction(&self, v: f64) -> f64 {
        (self.unit(v) - self.lo) / (self.hi - self.lo)
    }
}

// Layout, in SVG user units.
const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 64.0;
const PLOT_W: f64 = 560.0;
const PLOT_H: f64 = 350.0;
const LEGEND_X: f64 = LEFT + PLOT_W + 24.0;

/// Renders the plot as a standalone SVG document. The y axis is logarithmic when every
/// plotted value (medians and quartiles) is positive, linear otherwise; non-finite points are
/// left out, and a series with no finite point is left out entirely (legend included). Each
/// drawn series is exactly one `<path>` (its median line); the bands are `<polygon>`s.
pub fn render(plot: &Plot) -> String {
    let series: Vec<&Series> = plot
        .series
        .iter()
        .filter(|s| s.points.iter().any(finite))
        .collect();
    let points = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| finite(p)))
    };
    let (mut x_lo, mut x_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, med, lo, hi) in points() {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(med.min(lo).min(hi));
        y_hi = y_hi.max(med.max(lo).max(hi));
    }
    if !x_lo.is_finite() {
        (x_lo, x_hi, y_lo, y_hi) = (0.0, 1.0, 0.0, 1.0);
    }
    let x_axis = Axis::linear(x_lo.min(0.0), x_hi, 6);
    let y_axis = if y_lo > 0.0 {
        Axis::log10(y_lo, y_hi)
    } else {
        Axis::linear(y_lo, y_hi, 6)
    };
    let px = |x: f64| LEFT + x_axis.fraction(x) * PLOT_W;
    let py = |y: f64| TOP + PLOT_H - y_axis.fraction(y) * PLOT_H;

    // Wide enough for the longest legend label (about 7 px a character at 12 px).
    let longest = series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0);
    let width = WIDTH.max(LEGEND_X + 36.0 + 7.0 * longest as f64 + 12.0);
    let mut svg = String::new();
    let _ = writeln!(svg, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, "<title>{}</title>", escape(&plot.title));
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{width}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="26" font-size="17" font-weight="bold" text-anchor="middle">{}</text>"#,
        LEFT + PLOT_W / 2.0,
        escape(&plot.title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="46" fill="#444" text-anchor="middle">{}</text>"##,
        LEFT + PLOT_W / 2.0,
        escape(&plot.subtitle)
    );
    let _ = writeln!(
        svg,
        r#"<defs><clipPath id="plot-area"><rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}"/></clipPath></defs>"#
    );

    // Grid, ticks and tick labels.
    let _ = writeln!(svg, r##"<g stroke="#ddd" stroke-width="1">"##);
    for (v, _) in &y_axis.ticks {
        let y = TOP + PLOT_H - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * PLOT_H;
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}"/>"#,
            LEFT + PLOT_W
        );
    }
    for (v, _) in &x_axis.ticks {
        let x = LEFT + (v - x_axis.lo) / (x_axis.hi - x_axis.lo) * PLOT_W;
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.2}" y1="{TOP}" x2="{x:.2}" y2="{:.2}"/>"#,
            TOP + PLOT_H
        );
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, r#"<g stroke="black" stroke-width="1">"#);
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none"/>"#
    );
    for (v, _) in &y_axis.ticks {
        let y = TOP + PLOT_H - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * PLOT_H;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.2}" y1="{y:.2}" x2="{LEFT}" y2="{y:.2}"/>"#,
            LEFT - 5.0
        );
    }
    for (v, _) in &x_axis.ticks {
        let x = LEFT + (v - x_axis.lo) / (x_axis.hi - x_axis.lo) * PLOT_W;
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}"/>"#,
            TOP + PLOT_H,
            TOP + PLOT_H + 5.0
        );
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, r#"<g text-anchor="end">"#);
    for (v, label) in &y_axis.ticks {
        let y = TOP + PLOT_H - (v - y_axis.lo) / (y_axis.hi - y_axis.lo) * PLOT_H;
        let _ = writeln!(
            svg,
            r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            escape(label)
        );
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, r#"<g text-anchor="middle">"#);
    for (v, label) in &x_axis.ticks {
        let x = LEFT + (v - x_axis.lo) / (x_axis.hi - x_axis.lo) * PLOT_W;
        let _ = writeln!(
            svg,
            r#"<text x="{x:.2}" y="{:.2}">{}</text>"#,
            TOP + PLOT_H + 20.0,
            escape(label)
        );
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(
        svg,
        r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">{}</text>"#,
        LEFT + PLOT_W / 2.0,
        TOP + PLOT_H + 42.0,
        escape(&plot.x_label)
    );
    let y_label = if y_axis.log {
        format!("{}, log scale", plot.y_label)
    } else {
        plot.y_label.clone()
    };
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.2}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + PLOT_H / 2.0,
        escape(&y_label)
    );

    // Bands first, so that every line is drawn over every band.
    let _ = writeln!(svg, r#"<g clip-path="url(#plot-area)">"#);
    for s in &series {
        let pts: Vec<_> = s.points.iter().filter(|p| finite(p)).collect();
        let mut coords = String::new();
        for &&(x, _, _, hi) in &pts {
            let _ = write!(coords, "{:.2},{:.2} ", px(x), py(hi));
        }
        for &&(x, _, lo, _) in pts.iter().rev() {
            let _ = write!(coords, "{:.2},{:.2} ", px(x), py(lo));
        }
        let _ = writeln!(
            svg,
            r#"<polygon class="iqr" points="{}" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
            coords.trim_end(),
            color(s.style)
        );
    }
    for s in &series {
        let mut d = String::new();
        for (i, &(x, med, _, _)) in s.points.iter().filter(|p| finite(p)).enumerate() {
            let _ = write!(
                d,
                "{}{:.2} {:.2} ",
                if i == 0 { "M" } else { "L" },
                px(x),
                py(med)
            );
        }
        let _ = writeln!(
            svg,
            r#"<path class="median" d="{}" fill="none" stroke="{}" stroke-width="2"{}/>"#,
            d.trim_end(),
            color(s.style),
            dash(s.style)
        );
    }
    let _ = writeln!(svg, "</g>");

    // Legend, right of the plot area.
    let _ = writeln!(svg, r#"<g class="legend">"#);
    for (i, s) in series.iter().enumerate() {
        let y = TOP + 10.0 + 22.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{LEGEND_X}" y="{:.2}" width="28" height="12" fill="{}" fill-opacity="0.18"/>"#,
            y - 6.0,
            color(s.style)
        );
        let _ = writeln!(
            svg,
            r#"<line x1="{LEGEND_X}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="{}" stroke-width="2"{}/>"#,
            LEGEND_X + 28.0,
            color(s.style),
            dash(s.style)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
            LEGEND_X + 36.0,
            y + 4.0,
            escape(&s.label)
        );
    }
    let _ = writeln!(svg, "</g>");
    let _ = writeln!(svg, "</svg>");
    svg
}

fn finite(p: &(f64, f64, f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite() && p.2.is_finite() && p.3.is_finite()
}

fn color(style: usize) -> &'static str {
    PALETTE[style % PALETTE.len()]
}

fn dash(style: usize) -> String {
    match DASHES[(style / PALETTE.len()) % DASHES.len()] {
        "" => String::new(),
        d => format!(r#" stroke-dasharray="{d}""#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every tag is closed in order and every `&` starts an entity: the "XML-ish"
    /// well-formedness that a viewer needs.
    fn well_formed(svg: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            check_entities(text)?;
            let end = rest[start..]
                .find('>')
                .ok_or_else(|| "unterminated tag".to_owned())?
                + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                if open != name.trim() {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
                continue;
            }
            check_entities(tag)?;
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("odd quotes in <{tag}>"));
            }
            let name: String = tag
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        check_entities(rest)?;
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    fn check_entities(text: &str) -> Result<(), String> {
        for (i, _) in text.match_indices('&') {
            let after = &text[i + 1..];
            if !["amp;", "lt;", "gt;", "quot;", "apos;", "#"]
                .iter()
                .any(|e| after.starts_with(e))
            {
                return Err(format!("bare & in {text:?}"));
            }
        }
        Ok(())
    }

    fn series(label: &str, style: usize, scale: f64) -> Series {
        Series {
            label: label.to_owned(),
            style,
            points: (1..=50)
                .map(|t| {
                    let m = scale / f64::from(t);
                    (f64::from(t), m, m * 0.5, m * 2.0)
                })
                .collect(),
        }
    }

    fn plot(title: &str, series: Vec<Series>) -> Plot {
        Plot {
            title: title.to_owned(),
            subtitle: "median and IQR across seeds".to_owned(),
            x_label: "trials".to_owned(),
            y_label: "simple regret".to_owned(),
            series,
        }
    }

    #[test]
    fn a_plot_is_well_formed_with_one_path_per_series() {
        let svg = render(&plot(
            "branin",
            vec![
                series("random", 0, 10.0),
                series("tpe", 1, 3.0),
                series("optuna-tpe", 2, 1.0),
            ],
        ));
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("<path ").count(), 3, "{svg}");
        assert_eq!(svg.matches(r#"<polygon class="iqr""#).count(), 3);
        for label in ["random", "tpe", "optuna-tpe", "branin", "trials"] {
            assert!(svg.contains(&format!(">{label}<")), "{label}");
        }
        // All values positive: a log axis with decade ticks.
        assert!(svg.contains("simple regret, log scale"));
        assert!(svg.contains(">0.01<") && svg.contains(">10<"), "{svg}");
        assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]) && svg.contains(PALETTE[2]));
    }

    #[test]
    fn non_positive_values_fall_back_to_a_linear_axis() {
        let mut s = series("random", 0, 1.0);
        s.points[10].2 = -0.5;
        let svg = render(&plot("p", vec![s]));
        well_formed(&svg).unwrap();
        assert!(!svg.contains("log scale"));
        assert!(svg.contains(">-0.5<") || svg.contains(">-1.0<"), "{svg}");
        assert_eq!(svg.matches("<path ").count(), 1);
    }

    #[test]
    fn text_from_data_is_escaped() {
        assert_eq!(
            escape(r#"a<b>&"c'"#),
            "a&lt;b&gt;&amp;&quot;c&apos;".to_owned()
        );
        assert_eq!(escape("x\u{1}y"), "x\u{FFFD}y");
        let svg = render(&plot(
            r#"evil</title><script>&"#,
            vec![series("s<1>", 0, 1.0)],
        ));
        well_formed(&svg).unwrap();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("evil&lt;/title&gt;&lt;script&gt;&amp;"));
        assert!(svg.contains(">s&lt;1&gt;<"));
    }

    #[test]
    fn empty_and_non_finite_series_are_left_out() {
        let mut s = series("nan", 3, 1.0);
        for p in &mut s.points {
            p.1 = f64::NAN;
        }
        let svg = render(&plot("p", vec![s, series("ok", 0, 1.0)]));
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("<path ").count(), 1);
        assert!(!svg.contains(">nan<"));
        // Nothing at all still gives a valid, empty plot.
        well_formed(&render(&plot("empty", Vec::new()))).unwrap();
    }

    #[test]
    fn styles_beyond_the_palette_are_dashed() {
        assert_eq!(dash(0), "");
        assert!(dash(PALETTE.len()).contains("stroke-dasharray"));
        assert_eq!(color(PALETTE.len()), PALETTE[0]);
    }

    #[test]
    fn nice_ticks_cover_the_range() {
        let a = Axis::linear(0.0, 200.0, 6);
        assert_eq!(a.ticks.first().map(|t| t.1.as_str()), Some("0"));
        assert_eq!(a.ticks.last().map(|t| t.1.as_str()), Some("200"));
        assert!(a.ticks.len() >= 3 && a.ticks.len() <= 11);
        let l = Axis::log10(0.003, 40.0);
        let labels: Vec<&str> = l.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.001", "0.01", "0.1", "1", "10", "100"]);
        // Short ranges get ticks at 1, 2 and 5 times the powers of ten.
        let s = Axis::log10(0.3, 4.0);
        let labels: Vec<&str> = s.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.1", "0.2", "0.5", "1", "2", "5", "10"]);
        assert_eq!(decimal(5, -4), "5e-4");
        assert_eq!(decimal(2, 4), "20000");
        // A constant series still gets a non-empty range.
        let c = Axis::linear(5.0, 5.0, 6);
        assert!(c.hi > c.lo);
    }
}
