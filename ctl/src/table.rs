//! The plain-text tables of `status`, `front list` and `front status`.

/// Left-aligned columns, two spaces apart, the first row a header; no
/// trailing spaces.
pub fn columns(table: &[Vec<String>]) -> String {
    let n = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n).map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for row in table {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_trim() {
        let t = |rows: &[&[&str]]| rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect::<Vec<Vec<String>>>();
        assert_eq!(columns(&t(&[&["A", "BB"], &["ccc", "d"]])), "A    BB\nccc  d\n");
        assert_eq!(columns(&t(&[&["X", ""], &["y", ""]])), "X\ny\n");
        assert_eq!(columns(&[]), "");
    }
}
