//! The report's HTML page.
use crate::table::MedianPgr;
use crate::{pct, pgr_text};
use std::fmt::Write as _;
use w2s_experiment::SummaryRow;

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn page(
    summary: &[SummaryRow],
    table: &MedianPgr,
    figures: &[(String, String)],
) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>w2s report</title>\n<style>\
        body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
        table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
        th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #eee}\
        .note{color:#666;font-size:90%}</style></head><body>\n<h1>Weak-to-strong report</h1>\n");
    h.push_str("<p>PGR = (student &minus; weak) / (ceiling &minus; weak) on test accuracy, the mean of per-seed values \
        &plusmn; a 95% t-interval; &ldquo;no gap&rdquo; when the ceiling does not beat the weak model in every seed. \
        * marks a gap whose 95% interval includes 0 (PGR mostly noise). Definitions: docs/metrics.md.</p>\n");
    let MedianPgr {
        losses,
        datasets,
        cells,
    } = table;
    h.push_str(
        "<h2>(c) Median PGR per method and dataset, over the pairs with a usable gap (as w2s scout decides)</h2>\n<table><tr><th class=l>method</th>",
    );
    for d in datasets {
        let _ = write!(h, "<th>{}</th>", html_escape(d));
    }
    h.push_str("</tr>\n");
    for (i, l) in losses.iter().enumerate() {
        let _ = write!(h, "<tr><td class=l>{}</td>", html_escape(l));
        for v in &cells[i] {
            let _ = write!(
                h,
                "<td>{}</td>",
                v.map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "no gap".into())
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<h2>Runs, mean over seeds</h2>\n<table><tr><th class=l>dataset</th><th class=l>weak -> strong</th>\
        <th class=l>method</th><th>seeds</th><th>weak</th><th>ceiling</th><th>student</th><th>PGR</th><th>PGR (AUROC)</th>\
        <th>agreement</th><th>agr. on weak errors</th><th>direct</th></tr>\n");
    for r in summary {
        let path = match &r.chain {
            Some(c) => c.join(" -> "),
            None => format!("{} -> {}", r.weak, r.strong),
        };
        let pgr = pgr_text(r);
        let _ = writeln!(
            h,
            "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&r.dataset),
            html_escape(&path),
            html_escape(&r.series),
            r.n_seeds,
            pct(r.weak_acc),
            pct(r.ceiling_acc),
            pct(r.student_acc),
            pgr,
            r.pgr_auroc_mean.map(|p| format!("{p:.2}")).unwrap_or_else(|| "no gap".into()),
            pct(r.agreement),
            pct(r.agreement_on_weak_errors),
            r.direct_student_acc.map(pct).unwrap_or_default(),
        );
    }
    h.push_str("</table>\n<h2>Figures</h2>\n");
    for (stem, caption) in figures {
        let _ = writeln!(
            h,
            "<figure><img src=\"{stem}.png\" alt=\"{}\"><figcaption>{} &middot; <a href=\"{stem}.svg\">SVG</a></figcaption></figure>",
            html_escape(caption),
            html_escape(caption)
        );
    }
    h.push_str("<p class=note>Written by w2s report.</p></body></html>\n");
    h
}
