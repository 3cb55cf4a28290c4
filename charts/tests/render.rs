//! The chart as a reader gets it: an SVG document that parses, with dates on the time
//! axis, the seat line, hover titles and the empty state.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use quick_xml::events::Event;
use quick_xml::Reader;
use solme_charts::{render, Chart, Point, Series};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

/// Hourly readings of a week: `f(hour)` seats in use, `seats` given.
fn hourly(name: &str, seats: u32, f: impl Fn(i64) -> u32) -> Series {
    Series {
        name: name.into(),
        points: (0..168)
            .map(|h| Point {
                at: start() + Duration::hours(h),
                value: f(h),
                seats: Some(seats),
            })
            .collect(),
    }
}

/// Every element name, and every text (text nodes and attribute values) of the document;
/// panics when it is not well-formed XML.
fn parse(svg: &str) -> (Vec<String>, Vec<String>) {
    let mut reader = Reader::from_str(svg);
    let (mut names, mut texts, mut depth) = (Vec::new(), Vec::new(), 0i32);
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                depth += 1;
                names.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
            }
            Event::Empty(e) => names.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap()),
            Event::End(_) => depth -= 1,
            Event::Text(t) => texts.push(t.decode().unwrap().into_owned()),
            Event::GeneralRef(r) => texts.push(format!("&{};", String::from_utf8_lossy(&r))),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element is closed");
    (names, texts)
}

#[test]
fn a_week_of_use_has_dates_seat_lines_and_hover_values() {
    let series = [
        hourly("cad", 10, |h| u32::try_from(h % 24).unwrap().min(8)),
        hourly("cam", 5, |h| u32::try_from(h % 3).unwrap()),
    ];
    let chart = Chart::new(start(), start() + Duration::days(7), &series);
    let began = std::time::Instant::now();
    let svg = render(&chart).unwrap();
    let took = began.elapsed();
    eprintln!("a week, 2 features hourly: {} bytes in {took:?}", svg.len());
    let (names, texts) = parse(&svg);
    assert_eq!(names.first().map(String::as_str), Some("svg"));
    let all = texts.join("|");
    for day in ["Dec 2", "Dec 4", "Dec 6"] {
        assert!(all.contains(day), "the time axis names {day}: {all}");
    }
    assert!(all.contains("Date (UTC)") && all.contains("Seats"), "{all}");
    assert!(
        all.contains("cad: 10 seats"),
        "the seat line is labelled: {all}"
    );
    assert!(all.contains("cam: 5 seats"), "{all}");
    assert!(
        svg.contains("stroke-dasharray")
            || names
                .iter()
                .filter(|n| *n == "polyline" || *n == "line")
                .count()
                > 10,
        "the seat lines are dashed"
    );
    let titles = names.iter().filter(|n| *n == "title").count();
    assert_eq!(titles, 168, "one hover title per hour");
    assert!(all.contains("2026-12-01 05:00 UTC to 2026-12-01 06:00 UTC\ncad: 5 in use of 10 seats\ncam: 2 in use of 5 seats"), "{all}");
    assert!(!all.contains("No use in this period"));
    assert!(svg.len() < 200_000, "{} bytes", svg.len());
}

#[test]
fn a_period_without_use_says_so_and_still_shows_the_seats() {
    let series = [hourly("cad", 4, |_| 0)];
    let svg = render(&Chart::new(start(), start() + Duration::days(7), &series)).unwrap();
    let (_, texts) = parse(&svg);
    let all = texts.join("|");
    assert!(all.contains("No use in this period"), "{all}");
    assert!(all.contains("cad: 4 seats"), "{all}");
    let svg = render(&Chart::new(start(), start() + Duration::days(30), &[])).unwrap();
    let (_, texts) = parse(&svg);
    assert!(texts.join("|").contains("No use in this period"));
}

#[test]
fn names_are_escaped_and_an_empty_period_is_refused() {
    let series = [hourly("<script>&\"x\"", 2, |h| u32::from(h % 2 == 0))];
    let svg = render(&Chart::new(start(), start() + Duration::days(7), &series)).unwrap();
    parse(&svg);
    assert!(
        !svg.contains("<script>"),
        "a feature name is text, never markup"
    );
    assert!(render(&Chart::new(start(), start(), &series)).is_err());
}

#[test]
fn coinciding_lines_are_drawn_in_different_widths() {
    let series = [
        hourly("a", 3, |_| 2),
        hourly("b", 3, |_| 2),
        hourly("c", 3, |_| 2),
    ];
    let svg = render(&Chart::new(start(), start() + Duration::days(7), &series)).unwrap();
    for width in [
        "stroke-width=\"5\"",
        "stroke-width=\"3\"",
        "stroke-width=\"1\"",
    ] {
        assert!(svg.contains(width), "{width}");
    }
}

#[test]
fn a_day_is_marked_in_hours_and_a_year_in_months() {
    let series = [hourly("cad", 2, |h| u32::from(h % 5 == 0))];
    let svg = render(&Chart::new(start(), start() + Duration::days(1), &series)).unwrap();
    let (_, texts) = parse(&svg);
    let all = texts.join("|");
    for label in ["Dec 1", "06:00", "12:00", "Dec 2", "Date (UTC), 2026"] {
        assert!(all.contains(label), "{label}: {all}");
    }
    let year = render(&Chart::new(start(), start() + Duration::days(365), &series)).unwrap();
    let (_, texts) = parse(&year);
    let all = texts.join("|");
    for label in [
        "Dec 2026",
        "Feb 2027",
        "Jun 2027",
        "Date (UTC), 2026 to 2027",
    ] {
        assert!(all.contains(label), "{label}: {all}");
    }
}
