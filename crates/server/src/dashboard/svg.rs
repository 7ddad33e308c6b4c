//! Charts as inline SVG, readable without JavaScript: a source's backups on
//! a 30-day line with its recoverable window, and drills' recovery times.

use chrono::{DateTime, Duration, Utc};

const WIDTH: f64 = 720.0;

fn x_of(t: DateTime<Utc>, from: DateTime<Utc>, span: f64) -> f64 {
    let s = (t - from).num_seconds() as f64;
    (s / span * WIDTH).clamp(0.0, WIDTH)
}

/// The last 30 days: each snapshot a tick; for continuously archived
/// sources, the recoverable window their archive holds as a band.
pub fn timeline(
    snapshots: &[DateTime<Utc>],
    window: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    now: DateTime<Utc>,
) -> String {
    let from = now - Duration::days(30);
    let span = (now - from).num_seconds() as f64;
    let mut out = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} 48\" role=\"img\" aria-label=\"backups of the last 30 days\" preserveAspectRatio=\"none\">\
         <rect x=\"0\" y=\"16\" width=\"{WIDTH}\" height=\"16\" class=\"track\"/>"
    );
    if let Some((earliest, Some(latest))) = window {
        let (x, end) = (x_of(earliest, from, span), x_of(latest, from, span));
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"16\" width=\"{:.1}\" height=\"16\" class=\"window\"><title>recoverable to any second from {} to {}</title></rect>",
            (end - x).max(1.0),
            earliest.format("%Y-%m-%d %H:%M UTC"),
            latest.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    for t in snapshots {
        let x = x_of(*t, from, span);
        out.push_str(&format!(
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"8\" y2=\"40\" class=\"snap\"><title>{}</title></line>",
            t.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    // The dates are HTML under the drawing, which stretches to its box.
    out.push_str(&format!(
        "</svg><div class=\"axis\"><span>{}</span><span>now</span></div>",
        from.format("%b %d")
    ));
    out
}

/// Bars of drills' measured recovery times, oldest left, with the target
/// as a line when there is one.
pub fn rto_chart(drills: &[(DateTime<Utc>, f64, bool)], target: Option<f64>) -> String {
    let height = 140.0;
    let longest = drills.iter().map(|(_, s, _)| *s).fold(1.0_f64, f64::max);
    // A target far above every drill would flatten the bars: it is then
    // named, not drawn.
    let (line, far) = match target {
        Some(t) if t <= longest * 3.0 => (Some(t), None),
        other => (None, other),
    };
    let max = longest.max(line.unwrap_or(0.0)) * 1.15;
    let n = drills.len().max(1) as f64;
    let bar = (WIDTH / n).min(48.0);
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"recovery time of each drill\">",
        height + 20.0
    );
    for (i, (t, secs, ok)) in drills.iter().enumerate() {
        let h = secs / max * height;
        let x = i as f64 * bar;
        out.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"{}\"><title>{}: {secs:.0} s</title></rect>",
            x + 2.0,
            height - h,
            bar - 4.0,
            if *ok { "bar ok" } else { "bar bad" },
            t.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if let Some(t) = far {
        out.push_str(&format!(
            "<text x=\"{WIDTH}\" y=\"12\" text-anchor=\"end\" class=\"axis\">RTO target {}: far above every drill</text>",
            seconds_text(t)
        ));
    }
    if let Some(t) = line {
        let y = height - t / max * height;
        out.push_str(&format!(
            "<line x1=\"0\" x2=\"{WIDTH}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"target\"/><text x=\"{WIDTH}\" y=\"{:.1}\" text-anchor=\"end\" class=\"axis\">RTO target {}</text>",
            y - 4.0,
            seconds_text(t)
        ));
    }
    out.push_str(&format!(
        "<text x=\"0\" y=\"{}\" class=\"axis\">{} drill(s)</text></svg>",
        height + 16.0,
        drills.len()
    ));
    out
}

/// `90 s`, `15 min`, `1 h`, `1.5 h`.
fn seconds_text(s: f64) -> String {
    match s {
        s if s >= 3600.0 => format!("{} h", (s / 360.0).round() / 10.0),
        s if s >= 120.0 => format!("{:.0} min", s / 60.0),
        s => format!("{s:.0} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_inside_the_window_are_drawn_and_older_ones_pinned_to_its_start() {
        let now = Utc::now();
        let window = Some((now - Duration::days(3), Some(now - Duration::hours(1))));
        let svg = timeline(
            &[now - Duration::days(40), now - Duration::days(1)],
            window,
            now,
        );
        assert_eq!(svg.matches("class=\"snap\"").count(), 2);
        assert!(svg.contains("x1=\"0.0\""), "{svg}");
        assert!(svg.contains("class=\"window\""));
        // The band runs from the window's start (day 27 of 30) to its end.
        assert!(svg.contains("<rect x=\"648.0\""), "{svg}");
        assert!(!timeline(&[], None, now).contains("class=\"window\""));
        // Only to a consistency point: no band.
        let point = Some((now - Duration::days(3), None));
        assert!(!timeline(&[], point, now).contains("class=\"window\""));
    }

    #[test]
    fn failed_drills_are_marked_and_the_target_drawn() {
        let now = Utc::now();
        let svg = rto_chart(&[(now, 30.0, true), (now, 90.0, false)], Some(60.0));
        assert!(
            svg.contains("bar ok") && svg.contains("bar bad") && svg.contains("RTO target 60 s")
        );
        assert!(svg.contains("class=\"target\""));
        // An hour's target over drills of seconds is named, not drawn.
        let svg = rto_chart(&[(now, 5.0, true)], Some(3600.0));
        assert!(svg.contains("far above every drill") && !svg.contains("class=\"target\""));
    }
}
