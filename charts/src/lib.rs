//! The usage charts of the Solme licensing system, drawn on the server as SVG with
//! `plotters`: one place for the local server's manager page, the operator console and
//! the customer portal, so that every chart reads the same way.
//!
//! A chart shows seats over a period: a time axis with dates (UTC), a seat scale, one
//! line per feature, the seats each feature's license gives as a dashed line of the same
//! colour, a legend under the plot, and a sensible empty state. Lines that run together
//! stay visible: each later line is drawn narrower on top of the earlier ones, so where
//! two coincide both colours show. Every stretch of time carries an SVG `<title>` (all
//! features' values then) that a browser shows on hover when the SVG is part of the
//! page's markup.
//!
//! The SVG has no script and no style attribute (pages with a strict
//! Content-Security-Policy may insert it), and every text in it is escaped.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Timelike, Utc};
use plotters::coord::types::{RangedCoordi32, RangedCoordi64};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One reading: `value` (seats in use, or the highest in use) holds from `at` until the
/// next point of its series, or the end of the period.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub value: u32,
    /// The seats the license gave then, when known (drawn as the dashed seat line).
    pub seats: Option<u32>,
}

/// One feature's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// Oldest first.
    pub points: Vec<Point>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub series: &'a [Series],
    /// What a value is, in the hover text: "in use", "highest in use".
    pub value_words: &'a str,
    /// Said in the middle of the plot when no seat was used.
    pub empty_text: &'a str,
    /// Width in pixels (the SVG scales; its `viewBox` keeps the proportions).
    pub width: u32,
}

impl<'a> Chart<'a> {
    /// A chart of seats in use, 720 pixels wide, saying "No use in this period" when empty.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, series: &'a [Series]) -> Self {
        Chart {
            from,
            to,
            series,
            value_words: "in use",
            empty_text: "No use in this period",
            width: 720,
        }
    }
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the period must end after it starts")]
    EmptyPeriod,
    #[error("the chart could not be drawn: {0}")]
    Drawing(String),
}

/// Okabe–Ito colours (told apart with colour blindness), then black.
const COLORS: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x33, 0x33, 0x33),
];
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
const AXIS: RGBColor = RGBColor(0x55, 0x55, 0x55);
const PLOT_HEIGHT: u32 = 280;
const LEGEND_LINE: u32 = 20;
/// The most series a chart draws (a local server rarely holds more features; the
/// legend says how many were left out).
pub const MAX_SERIES: usize = 24;

/// The colour of the `index`th series, as `#rrggbb` (for a legend drawn by a page).
pub fn color_of(index: usize) -> String {
    let RGBColor(r, g, b) = COLORS[index % COLORS.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The date and time as every chart's hover text says it (the CLI's form).
pub fn time_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Draws `chart` and returns the SVG document.
pub fn render(chart: &Chart<'_>) -> Result<String, ChartError> {
    if chart.to <= chart.from {
        return Err(ChartError::EmptyPeriod);
    }
    let series = &chart.series[..chart.series.len().min(MAX_SERIES)];
    let left_out = chart.series.len() - series.len();
    let legend_lines = u32::try_from(series.len() + 1 + usize::from(left_out > 0)).unwrap_or(1);
    let width = chart.width.clamp(320, 4000);
    let height = PLOT_HEIGHT + legend_lines * LEGEND_LINE + 8;
    let top = series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|p| p.value.max(p.seats.unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1);
    let empty = series.iter().all(|s| s.points.iter().all(|p| p.value == 0));

    let mut svg = String::new();
    let hover;
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (plot_area, legend_area) = root.split_vertically(PLOT_HEIGHT);
        let y_top = i32::try_from(top).unwrap_or(i32::MAX / 2);
        // Headroom above the highest value so a line at the top stays visible.
        let y_range = 0..y_top + (y_top / 10).max(1);
        let mut ctx = ChartBuilder::on(&plot_area)
            .margin(12)
            .margin_right(36)
            .y_label_area_size(48)
            .set_label_area_size(LabelAreaPosition::Bottom, 40)
            .build_cartesian_2d(
                RangedCoordi64::from(ms(chart.from)..ms(chart.to)),
                RangedCoordi32::from(y_range),
            )
            .map_err(drawing)?;
        let y_formatter = |v: &i32| v.to_string();
        let no_label = |_: &i64| String::new();
        ctx.configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            // The dates are drawn by `draw_time_axis` (whole days, not round numbers of
            // milliseconds): plotters' own x labels are left empty.
            .x_labels(1)
            .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
            .x_label_formatter(&no_label)
            .y_labels(usize::try_from(y_top.min(8)).unwrap_or(8) + 1)
            .y_label_formatter(&y_formatter)
            .x_desc(date_words(chart.from, chart.to))
            .y_desc("Seats")
            .label_style(label_font())
            .axis_desc_style(label_font())
            .draw()
            .map_err(drawing)?;
        draw_time_axis(&root, &ctx, chart, width)?;

        let n = series.len();
        // Seat lines first (under the usage lines), dashed, in the feature's colour.
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let seats: Vec<(DateTime<Utc>, u32)> = s
                .points
                .iter()
                .filter_map(|p| p.seats.map(|n| (p.at, n)))
                .collect();
            if seats.is_empty() {
                continue;
            }
            ctx.draw_series(DashedLineSeries::new(
                steps(&seats, chart.from, chart.to),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(drawing)?;
        }
        // The first line widest, each later one narrower on top of it.
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let width = u32::try_from(1 + 2 * (n - 1 - i)).unwrap_or(1).min(9);
            let values: Vec<(DateTime<Utc>, u32)> =
                s.points.iter().map(|p| (p.at, p.value)).collect();
            ctx.draw_series(LineSeries::new(
                steps(&values, chart.from, chart.to),
                color.stroke_width(width),
            ))
            .map_err(drawing)?;
        }
        // Seat labels at the right end of each seat line (features sharing one number
        // share a label).
        let mut labels: Vec<(u32, Vec<&str>, usize)> = Vec::new();
        for (i, s) in series.iter().enumerate() {
            if let Some(seats) = s.points.iter().rev().find_map(|p| p.seats) {
                match labels.iter_mut().find(|(n, _, _)| *n == seats) {
                    Some((_, names, _)) => names.push(&s.name),
                    None => labels.push((seats, vec![&s.name], i)),
                }
            }
        }
        let right = ctx.backend_coord(&(ms(chart.to), 0)).0;
        for (seats, names, first) in &labels {
            let y = ctx
                .backend_coord(&(ms(chart.to), i32::try_from(*seats).unwrap_or(0)))
                .1;
            let text = format!("{}: {}", names.join(", "), seats_words(*seats));
            let style = ("sans-serif", 15)
                .into_font()
                .color(&COLORS[first % COLORS.len()])
                .pos(Pos::new(HPos::Right, VPos::Bottom));
            root.draw(&Text::new(text, (right - 4, y - 3), style))
                .map_err(drawing)?;
        }
        if empty {
            let ((x0, y0), (x1, y1)) = plot_bounds(&ctx, chart);
            let style = ("sans-serif", 20)
                .into_font()
                .color(&AXIS)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(
                chart.empty_text.to_owned(),
                ((x0 + x1) / 2, (y0 + y1) / 2),
                style,
            ))
            .map_err(drawing)?;
        }
        draw_legend(&legend_area, series, left_out)?;
        hover = hover_regions(&ctx, chart, series);
        root.present().map_err(drawing)?;
    }
    // The hover regions go last, over everything: transparent, each with its title.
    match svg.rfind("</svg>") {
        Some(end) => svg.insert_str(end, &hover),
        None => return Err(ChartError::Drawing("the SVG has no end".into())),
    }
    Ok(svg)
}

/// The time axis runs in milliseconds since 1970 (UTC).
fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn label_font() -> TextStyle<'static> {
    ("sans-serif", 16).into_font().color(&AXIS)
}

/// "Date (UTC), 2026" or "Date (UTC), 2026 to 2027": the ticks name days, the
/// description the year.
fn date_words(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let last = to - Duration::milliseconds(1);
    if from.year() == last.year() {
        format!("Date (UTC), {}", from.year())
    } else {
        format!("Date (UTC), {} to {}", from.year(), last.year())
    }
}

/// Tick times on the time axis: whole hours, days or months (UTC), at most `max`.
fn ticks(from: DateTime<Utc>, to: DateTime<Utc>, max: i64) -> (Vec<DateTime<Utc>>, &'static str) {
    let span_hours = (to - from).num_hours().max(1);
    let midnight = |at: DateTime<Utc>| {
        at.date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(at, |d| d.and_utc())
    };
    for step in [1i64, 2, 3, 6, 12, 24, 48, 168, 336] {
        if span_hours / step > max {
            continue;
        }
        let step = Duration::hours(step);
        let mut at = midnight(from);
        while at < from {
            at += step;
        }
        let mut out = Vec::new();
        while at <= to {
            out.push(at);
            at += step;
        }
        // Hours read "06:00"; a day's first tick names the day.
        let format = if step < Duration::days(1) {
            "%H:%M"
        } else {
            "%b %-d"
        };
        return (out, format);
    }
    for months in [1u32, 2, 3, 6, 12] {
        let mut out = Vec::new();
        let mut at = NaiveDate::from_ymd_opt(from.year(), from.month(), 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        while let Some(t) = at {
            if t > to {
                break;
            }
            if t >= from {
                out.push(t);
            }
            at = t.checked_add_months(Months::new(months));
        }
        if i64::try_from(out.len()).unwrap_or(i64::MAX) <= max {
            return (out, "%b %Y");
        }
    }
    (vec![from, to], "%Y-%m-%d")
}

/// The time axis: a tick, a faint grid line and a date at each tick.
fn draw_time_axis(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    ctx: &Ctx<'_, '_>,
    chart: &Chart<'_>,
    width: u32,
) -> Result<(), ChartError> {
    let ((_, y0), (_, y1)) = plot_bounds(ctx, chart);
    let (times, format) = ticks(chart.from, chart.to, i64::from(width / 80).max(2));
    let style = label_font().pos(Pos::new(HPos::Center, VPos::Top));
    for at in times {
        let x = ctx.backend_coord(&(ms(at), 0)).0;
        root.draw(&PathElement::new(
            vec![(x, y0), (x, y1)],
            GRID.stroke_width(1),
        ))
        .map_err(drawing)?;
        root.draw(&PathElement::new(
            vec![(x, y1), (x, y1 + 5)],
            AXIS.stroke_width(1),
        ))
        .map_err(drawing)?;
        let label = if format == "%H:%M" && at.hour() == 0 && at.minute() == 0 {
            at.format("%b %-d").to_string()
        } else {
            at.format(format).to_string()
        };
        root.draw(&Text::new(label, (x, y1 + 8), style.clone()))
            .map_err(drawing)?;
    }
    Ok(())
}

fn drawing<E: std::fmt::Display>(err: E) -> ChartError {
    ChartError::Drawing(err.to_string())
}

type Ctx<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordi64, RangedCoordi32>>;

/// The plot's corners in pixels: top left, bottom right.
fn plot_bounds(ctx: &Ctx<'_, '_>, chart: &Chart<'_>) -> ((i32, i32), (i32, i32)) {
    let (x0, y0) = ctx.backend_coord(&(ms(chart.from), 0));
    let (x1, _) = ctx.backend_coord(&(ms(chart.to), 0));
    let (top_y, bottom_y) = {
        let area = ctx.plotting_area();
        let (_, ys) = area.get_pixel_range();
        (ys.start, ys.end)
    };
    let _ = y0;
    ((x0, top_y), (x1, bottom_y))
}

/// A step line through `(at, value)` readings, each held until the next, within the period.
fn steps(
    points: &[(DateTime<Utc>, u32)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(i64, i32)> {
    let mut line = Vec::with_capacity(points.len() * 2 + 1);
    for (k, (at, value)) in points.iter().enumerate() {
        let start = (*at).clamp(from, to);
        let end = points.get(k + 1).map_or(to, |next| next.0.clamp(from, to));
        if end <= start && k + 1 < points.len() {
            continue;
        }
        let v = i32::try_from(*value).unwrap_or(i32::MAX / 2);
        line.push((ms(start), v));
        line.push((ms(end), v));
    }
    line
}

fn seats_words(n: u32) -> String {
    if n == 1 {
        "1 seat".to_owned()
    } else {
        format!("{n} seats")
    }
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    series: &[Series],
    left_out: usize,
) -> Result<(), ChartError> {
    let style = ("sans-serif", 16).into_font().color(&BLACK);
    let row =
        |k: usize| 4 + i32::try_from(k).unwrap_or(0) * i32::try_from(LEGEND_LINE).unwrap_or(20);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = row(i);
        area.draw(&Rectangle::new([(64, y + 3), (88, y + 11)], color.filled()))
            .map_err(drawing)?;
        let peak = s.points.iter().map(|p| p.value).max().unwrap_or(0);
        let mut text = format!("{}: highest {peak}", s.name);
        if let Some(seats) = s.points.iter().rev().find_map(|p| p.seats) {
            let _ = write!(text, " of {}", seats_words(seats));
        }
        area.draw(&Text::new(text, (96, y), style.clone()))
            .map_err(drawing)?;
    }
    let y = row(series.len());
    for k in 0..3 {
        area.draw(&PathElement::new(
            vec![(64 + k * 9, y + 7), (70 + k * 9, y + 7)],
            AXIS.stroke_width(1),
        ))
        .map_err(drawing)?;
    }
    area.draw(&Text::new(
        "dashed: the seats the license gives",
        (96, y),
        style.clone(),
    ))
    .map_err(drawing)?;
    if left_out > 0 {
        area.draw(&Text::new(
            format!("{left_out} more features are not drawn"),
            (96, row(series.len() + 1)),
            style,
        ))
        .map_err(drawing)?;
    }
    Ok(())
}

/// Transparent rectangles, one per stretch of time between readings, each titled with
/// every feature's value then.
fn hover_regions(ctx: &Ctx<'_, '_>, chart: &Chart<'_>, series: &[Series]) -> String {
    let ((_, y0), (_, y1)) = plot_bounds(ctx, chart);
    let mut cuts: Vec<DateTime<Utc>> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.at))
        .filter(|at| *at > chart.from && *at < chart.to)
        .collect();
    cuts.push(chart.from);
    cuts.push(chart.to);
    cuts.sort();
    cuts.dedup();
    let mut out = String::from("<g class=\"hover\" fill=\"#000000\" fill-opacity=\"0\">\n");
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let mut lines = Vec::new();
        for s in series {
            let Some(p) = s.points.iter().rev().find(|p| p.at <= a) else {
                continue;
            };
            let mut line = format!("{}: {} {}", s.name, p.value, chart.value_words);
            if let Some(seats) = p.seats {
                let _ = write!(line, " of {}", seats_words(seats));
            }
            lines.push(line);
        }
        if lines.is_empty() {
            continue;
        }
        let xa = ctx.backend_coord(&(ms(a), 0)).0;
        let xb = ctx.backend_coord(&(ms(b), 0)).0;
        let title = format!("{} to {}\n{}", time_text(a), time_text(b), lines.join("\n"));
        let _ = writeln!(
            out,
            "<rect x=\"{xa}\" y=\"{y0}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
            (xb - xa).max(1),
            (y1 - y0).max(1),
            quick_xml::escape::escape(&title)
        );
    }
    out.push_str("</g>\n");
    out
}
