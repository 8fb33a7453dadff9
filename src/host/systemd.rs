//! systemctl commands, with the unit kept an operand whatever it looks like.

use crate::quote::operands;

/// `systemctl VERB UNIT` (`UNIT` empty: `systemctl VERB`, as `daemon-reload`).
pub fn command(verb: &str, unit: &str) -> String {
    if unit.is_empty() {
        format!("systemctl {verb}")
    } else {
        format!("systemctl {verb} {}", operands([unit]))
    }
}

/// The command that exits 0 exactly when `unit` is active.
pub fn is_active_command(unit: &str) -> String {
    format!("systemctl is-active --quiet {}", operands([unit]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_that_looks_like_an_option_stays_a_unit() {
        assert_eq!(command("restart", "kubelet"), "systemctl restart kubelet");
        assert_eq!(command("daemon-reload", ""), "systemctl daemon-reload");
        assert_eq!(
            command("restart", "--host=evil"),
            "systemctl restart -- --host=evil"
        );
        assert_eq!(
            is_active_command("-.mount"),
            "systemctl is-active --quiet -- -.mount"
        );
    }
}
