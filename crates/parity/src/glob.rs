//! Minimal shell-style glob matching (`*` any run, `?` one character) for `--only`.

/// Whether `text` matches `pattern` in full.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("*.logits", "p0.logits"));
        assert!(matches("tok*_ids", "tok3_ids"));
        assert!(!matches("tok*_ids", "tok3_ids_autotokenizer"));
        assert!(matches("p?.input_ids", "p1.input_ids"));
        assert!(matches("*", ""));
        assert!(!matches("a*b", "acd"));
        assert!(matches("*quirk", "p0.gen_new_ids_nocache_quirk"));
    }
}
