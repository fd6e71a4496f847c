//! `lb hash --svg FILE`: a self-contained SVG chart of an [`Analysis`].
//!
//! The top panel shows the keys each backend holds, with a black tick at the share its
//! weight entitles it to; the bottom panel (with `--add` or `--remove`) shows the backends
//! after the change, each bar split into the keys that stayed (blue) and the keys that
//! moved to it (orange), and the removed backends as dashed outlines. The title line
//! repeats the report's figures. Plain SVG 1.1: no script, no external font or style.

use std::fmt::Write as _;

use crate::hash::Analysis;

const W: f64 = 960.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const PANEL_H: f64 = 230.0;
const TOP: f64 = 104.0;
const GAP: f64 = 70.0;
const BLUE: &str = "#4a7bd0";
const ORANGE: &str = "#f0a030";
const RED: &str = "#c0392b";

/// A round axis maximum and step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let max = max.max(1.0);
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Panel {
    top: f64,
    ymax: f64,
    step: f64,
    slots: usize,
}

impl Panel {
    fn y(&self, v: f64) -> f64 {
        self.top + PANEL_H - v / self.ymax * PANEL_H
    }
    fn slot(&self) -> f64 {
        (W - LEFT - RIGHT) / self.slots as f64
    }
    fn x(&self, i: usize) -> f64 {
        LEFT + i as f64 * self.slot()
    }
    fn bar_w(&self) -> f64 {
        let s = self.slot();
        if s > 4.0 {
            s * 0.8
        } else {
            s.max(0.3)
        }
    }

    fn frame(&self, out: &mut String, title: &str) {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" class="h">{}</text>"#,
            self.top - 10.0,
            esc(title)
        );
        let mut v = 0.0;
        while v <= self.ymax + 1e-9 {
            let y = self.y(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{:.1}" y="{:.1}" class="t" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                v as u64
            );
            v += self.step;
        }
        let _ = writeln!(
            out,
            r##"<text transform="translate(18 {:.1}) rotate(-90)" class="t" text-anchor="middle">keys</text>"##,
            self.top + PANEL_H / 2.0
        );
        let every = self.slots.div_ceil(24).max(1);
        for i in (0..self.slots).step_by(every) {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" class="t" text-anchor="middle">{i}</text>"#,
                self.x(i) + self.slot() / 2.0,
                self.top + PANEL_H + 15.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="t" text-anchor="middle">backend</text>"#,
            LEFT + (W - LEFT - RIGHT) / 2.0,
            self.top + PANEL_H + 31.0
        );
    }

    fn bar(&self, out: &mut String, i: usize, from: f64, to: f64, fill: &str, class: &str) {
        let (y1, y0) = (self.y(to), self.y(from));
        let _ = writeln!(
            out,
            r#"<rect class="{class}" x="{:.2}" y="{y1:.2}" width="{:.2}" height="{:.2}" fill="{fill}"/>"#,
            self.x(i) + (self.slot() - self.bar_w()) / 2.0,
            self.bar_w(),
            (y0 - y1).max(0.0)
        );
    }

    fn tick(&self, out: &mut String, i: usize, v: f64) {
        let y = self.y(v);
        let _ = writeln!(
            out,
            r##"<line class="ideal" x1="{:.2}" x2="{:.2}" y1="{y:.2}" y2="{y:.2}" stroke="#111" stroke-width="1.5"/>"##,
            self.x(i),
            self.x(i) + self.slot()
        );
    }
}

/// The chart as SVG text.
#[allow(clippy::too_many_lines)] // one SVG document written top to bottom: axes, bars, legend
pub fn svg(a: &Analysis) -> String {
    let n = a.load.len();
    let after_n = a.moved.as_ref().map_or(0, |m| m.after.len());
    let slots = n.max(after_n).max(1);
    let mut top_max = a.load.iter().copied().max().unwrap_or(0) as f64;
    if let Some(m) = &a.moved {
        top_max = top_max.max(m.after.iter().copied().max().unwrap_or(0) as f64);
    }
    for i in 0..n {
        top_max = top_max.max(a.expected(i));
    }
    let (ymax, step) = axis(top_max * 1.05);
    let panels = if a.moved.is_some() { 2.0 } else { 1.0 };
    let h = TOP + panels * (PANEL_H + GAP) + 10.0;
    let mut out = String::with_capacity(4096 + 400 * slots * 3);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="DejaVu Sans, Verdana, sans-serif">"#
    );
    out.push_str("<style>.h{font-size:14px;font-weight:bold}.t{font-size:11px;fill:#444}.s{font-size:12px;fill:#222}</style>\n");
    let _ = writeln!(out, r##"<rect width="{W}" height="{h}" fill="#ffffff"/>"##);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="24" style="font-size:17px;font-weight:bold">lb hash: {} · {n} backends · {} keys</text>"#,
        a.strategy, a.keys
    );
    let mut summary = format!(
        "spread max/mean {:.3} · stddev/mean {:.4}",
        a.spread(),
        a.stddev()
    );
    if let Some(m) = &a.moved {
        let _ = write!(
            summary,
            " · {} {}: moved {:.2} % of keys (ideal {:.2} %)",
            m.what,
            m.count,
            m.fraction * 100.0,
            m.ideal * 100.0
        );
    }
    if let Some(ns) = a.pick_ns {
        let _ = write!(summary, " · pick {ns:.0} ns");
    }
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="44" class="s">{}</text>"#,
        esc(&summary)
    );
    // Legend.
    let legend: &[(&str, &str)] = if a.moved.is_some() {
        &[
            (BLUE, "keys on the backend (after: keys that stayed)"),
            (ORANGE, "keys that moved to it"),
            ("#111", "share its weight entitles it to"),
        ]
    } else {
        &[
            (BLUE, "keys on the backend"),
            ("#111", "share its weight entitles it to"),
        ]
    };
    let mut lx = LEFT;
    for (color, label) in legend {
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="55" width="12" height="10" fill="{color}"/><text x="{:.1}" y="64" class="t">{}</text>"#,
            lx + 16.0,
            esc(label)
        );
        lx += 30.0 + label.len() as f64 * 6.2;
    }
    let before = Panel {
        top: TOP,
        ymax,
        step,
        slots,
    };
    before.frame(&mut out, "keys per backend");
    for (i, &l) in a.load.iter().enumerate() {
        before.bar(&mut out, i, 0.0, l as f64, BLUE, "bar");
    }
    for i in 0..n {
        before.tick(&mut out, i, a.expected(i));
    }
    if let Some(m) = &a.moved {
        let after = Panel {
            top: TOP + PANEL_H + GAP,
            ymax,
            step,
            slots,
        };
        after.frame(
            &mut out,
            &format!(
                "after {} {}: keys that stayed and keys that moved",
                m.what, m.count
            ),
        );
        let total_after: f64 = match m.what {
            "add" => a.weights.iter().map(|&w| f64::from(w)).sum::<f64>() + m.count as f64,
            _ => a.weights[..after_n].iter().map(|&w| f64::from(w)).sum(),
        };
        for (i, (&l, &arr)) in m.after.iter().zip(&m.arrived).enumerate() {
            let stayed = (l - arr) as f64;
            after.bar(&mut out, i, 0.0, stayed, BLUE, "bar-after");
            after.bar(&mut out, i, stayed, l as f64, ORANGE, "bar-moved");
            let w = a.weights.get(i).copied().unwrap_or(1);
            after.tick(&mut out, i, a.keys as f64 * f64::from(w) / total_after);
        }
        if m.what == "remove" {
            for i in after_n..n {
                let y1 = after.y(a.load[i] as f64);
                let _ = writeln!(
                    out,
                    r#"<rect class="removed" x="{:.2}" y="{y1:.2}" width="{:.2}" height="{:.2}" fill="none" stroke="{RED}" stroke-dasharray="4 3"/>"#,
                    after.x(i) + (after.slot() - after.bar_w()) / 2.0,
                    after.bar_w(),
                    after.y(0.0) - y1
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" class="t" fill="{RED}" text-anchor="end">dashed: removed (their keys moved)</text>"#,
                W - RIGHT,
                after.top - 10.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{analyse, HashArgs};

    fn analysis(n: usize, add: Option<usize>, remove: Option<usize>) -> Analysis {
        analyse(&HashArgs {
            strategy: "consistent".into(),
            backends: n,
            weights: vec![],
            keys: 5_000,
            add,
            remove,
            vnodes: 160,
            time_picks: false,
        })
        .unwrap()
    }

    #[test]
    fn one_bar_per_backend_and_panel() {
        let s = svg(&analysis(7, None, None));
        assert_eq!(s.matches(r#"class="bar""#).count(), 7);
        assert_eq!(s.matches(r#"class="ideal""#).count(), 7);
        assert!(!s.contains("bar-moved") && !s.contains("NaN"), "{s}");
        let s = svg(&analysis(7, Some(2), None));
        assert_eq!(s.matches(r#"class="bar""#).count(), 7);
        assert_eq!(s.matches(r#"class="bar-after""#).count(), 9);
        assert_eq!(s.matches(r#"class="bar-moved""#).count(), 9);
        assert!(s.contains("add 2: moved"), "{s}");
        let s = svg(&analysis(7, None, Some(3)));
        assert_eq!(s.matches(r#"class="bar-after""#).count(), 4);
        assert_eq!(s.matches(r#"class="removed""#).count(), 3);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches('<').count(), s.matches('>').count());
    }

    #[test]
    fn axis_is_round_and_covers_the_max() {
        assert_eq!(axis(1043.0), (1250.0, 250.0));
        assert_eq!(axis(990.0), (1000.0, 200.0));
        assert_eq!(axis(9.0), (10.0, 2.0));
        assert_eq!(axis(0.0), (1.0, 0.2));
        let (m, s) = axis(123_456.0);
        assert!(m >= 123_456.0 && s > 0.0);
    }
}
