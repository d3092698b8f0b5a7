//! The leaderboard page (`GET /`): every task's baselines and each caller's best submission,
//! rendered on the server; every text from a task file or a caller is escaped.
use crate::db::Submission;
use crate::task::Task;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn pgr(p: Option<f64>) -> String {
    p.map_or_else(|| "no gap".into(), |p| format!("{p:.3}"))
}

/// The page.
pub fn render(board: &[(&Task, Vec<Submission>)]) -> String {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>w2s benchmark</title><style>\
         body{font-family:sans-serif;margin:2em;max-width:60em}\
         table{border-collapse:collapse;margin-bottom:1em}\
         td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
         td.n{text-align:right}</style></head><body>\n<h1>w2s benchmark</h1>\n\
         <p>Weak-to-strong tasks with hidden test labels. Accuracy is on the test split, in %; \
         PGR = (submission − weak) / (ceiling − weak) at the served split.</p>\n",
    );
    for (t, best) in board {
        let b = &t.baselines;
        let _ = write!(
            h,
            "<section class=\"task\" id=\"task-{id}\"><h2>{id}</h2>\n<p>{data}: weak {weak}, \
             strong {strong}; {train} training rows with weak labels, {test} test rows.</p>\n\
             <table class=\"baselines\"><tr><th>baseline</th><th>served split</th>\
             <th>mean of {seeds} seeds</th></tr>\n\
             <tr><td>weak</td><td class=\"n\">{w}</td><td class=\"n\">{mw}</td></tr>\n\
             <tr><td>naive student ({method})</td><td class=\"n\">{s}</td><td class=\"n\">{ms}</td></tr>\n\
             <tr><td>ceiling</td><td class=\"n\">{c}</td><td class=\"n\">{mc}</td></tr></table>\n",
            id = esc(&t.id),
            data = esc(&t.dataset),
            weak = esc(&t.weak),
            strong = esc(&t.strong),
            train = t.train.len(),
            test = t.test.len(),
            seeds = b.seeds,
            method = esc(&b.method),
            w = pct(b.split.weak),
            mw = pct(b.mean.weak),
            s = pct(b.split.naive_student),
            ms = pct(b.mean.naive_student),
            c = pct(b.split.ceiling),
            mc = pct(b.mean.ceiling),
        );
        if best.is_empty() {
            h.push_str("<p class=\"empty\">No submissions yet.</p>\n");
        } else {
            h.push_str(
                "<table class=\"best\"><tr><th>#</th><th>caller</th><th>submission</th>\
                 <th>accuracy</th><th>PGR</th></tr>\n",
            );
            for (i, s) in best.iter().enumerate() {
                let _ = writeln!(
                    h,
                    "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
                     <td class=\"n\">{}</td></tr>",
                    i + 1,
                    esc(&s.caller),
                    esc(&s.name),
                    pct(s.accuracy),
                    pgr(s.pgr)
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_callers_write() {
        let t = crate::task::tests::binary_task();
        let s = Submission {
            submission_id: 1,
            task: "t".into(),
            caller: "eve".into(),
            name: "<script>alert('x')</script> & more".into(),
            accuracy: 0.75,
            pgr: Some(1.0),
            created: 0,
        };
        let html = render(&[(&t, vec![s])]);
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("<td class=\"n\">75.0</td>"));
        let empty = render(&[(&t, vec![])]);
        assert!(empty.contains("No submissions yet."));
    }
}
