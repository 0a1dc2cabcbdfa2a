//! kubectl-like tables: one row per object, columns per kind (the
//! columns themselves are [`rudder_api::columns`]).

pub use rudder_api::columns::{age, event_columns, headers, row};

/// Formats rows with columns padded to their widest cell, three spaces
/// apart, as kubectl does.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.len());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_three_spaces_apart() {
        let table = render(&["NAME", "X"], &[vec!["a-long-name".into(), "1".into()]]);
        assert_eq!(table, "NAME          X\na-long-name   1\n");
    }
}
