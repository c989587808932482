//! `podhost top pod [NAME] [--containers]`, like `kubectl top pod`.

use crate::server::Usage;

use super::output::table;

/// kubectl's figures: CPU in millicores (`12m`), memory in MiB (`5Mi`).
pub fn top_table(
    rows: &[Usage],
    namespace: Option<&str>,
    name: Option<&str>,
    containers: bool,
) -> String {
    let wanted =
        |u: &&Usage| namespace.is_none_or(|n| u.namespace == n) && name.is_none_or(|n| u.pod == n);
    let mib = |b: u64| format!("{}Mi", b / (1024 * 1024));
    let mut out = Vec::new();
    if containers {
        out.push(
            ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
                .map(String::from)
                .to_vec(),
        );
        for u in rows
            .iter()
            .filter(wanted)
            .filter(|u| !u.container.is_empty())
        {
            out.push(vec![
                u.pod.clone(),
                u.container.clone(),
                format!("{}m", u.cpu_millis),
                mib(u.memory_bytes),
            ]);
        }
    } else {
        let mut head = vec!["NAME", "CPU(cores)", "MEMORY(bytes)"];
        if namespace.is_none() {
            head.insert(0, "NAMESPACE");
        }
        out.push(head.into_iter().map(String::from).collect());
        for u in rows
            .iter()
            .filter(wanted)
            .filter(|u| u.container.is_empty())
        {
            let mut row = vec![
                u.pod.clone(),
                format!("{}m", u.cpu_millis),
                mib(u.memory_bytes),
            ];
            if namespace.is_none() {
                row.insert(0, u.namespace.clone());
            }
            out.push(row);
        }
    }
    table(&out)
}
