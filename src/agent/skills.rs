//! Skills: `SKILL.md` files in the agent's workspace (`skills/<name>/`)
//! that the model may read when a task matches, as OpenClaw lays them out.
//!
//! Why only a catalog goes in the prompt: a skill's instructions can be
//! long; the prompt lists each eligible skill's name, description and file
//! path, and the model reads the file with the `read` tool when it needs
//! it (OpenClaw's contract, `<available_skills>`). Eligibility is checked
//! here: the binaries (`requires.bins`), environment variables
//! (`requires.env`) and operating systems (`os`) a skill declares in its
//! frontmatter's `metadata.openclaw`; a skill that cannot work here is
//! listed by `skills.status` with what is missing, not offered to the model.
//!
//! The frontmatter reader takes what skills use: single-line `key: value`
//! pairs (quoted or not) and `metadata` as inline JSON. Anything else is
//! reported as the skill's problem, never guessed at.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Skills read per workspace at most.
const SKILLS_MAX: usize = 200;
/// The largest SKILL.md read.
const SKILL_FILE_BYTES_MAX: u64 = 256 * 1024;

#[derive(Clone, Debug, Default)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub file_path: PathBuf,
    pub base_dir: PathBuf,
    pub bins: Vec<String>,
    pub env: Vec<String>,
    pub os: Vec<String>,
    pub emoji: Option<String>,
    pub homepage: Option<String>,
    /// Why the file could not be read as a skill, if so.
    pub problem: Option<String>,
}

impl Skill {
    /// What the skill needs that is not here: (bins, env, os).
    pub fn missing(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let bins = self
            .bins
            .iter()
            .filter(|bin| !on_path(bin))
            .cloned()
            .collect();
        let env = self
            .env
            .iter()
            .filter(|name| std::env::var_os(name).is_none_or(|value| value.is_empty()))
            .cloned()
            .collect();
        let os = if self.os.is_empty() || self.os.iter().any(|os| os == platform()) {
            Vec::new()
        } else {
            self.os.clone()
        };
        (bins, env, os)
    }

    pub fn eligible(&self) -> bool {
        let (bins, env, os) = self.missing();
        self.problem.is_none() && bins.is_empty() && env.is_empty() && os.is_empty()
    }
}

/// Node's name for this OS, which skills use (`darwin`, `linux`, `win32`).
fn platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    }
}

fn on_path(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(bin).is_file()))
}

/// The skills in `<workspace>/skills/*/SKILL.md`, by name.
pub fn discover(workspace: &Path) -> Vec<Skill> {
    let Ok(entries) = std::fs::read_dir(workspace.join("skills")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("SKILL.md").is_file())
        .collect();
    dirs.sort();
    dirs.truncate(SKILLS_MAX);
    let mut skills: Vec<Skill> = dirs.iter().map(|dir| read(dir)).collect();
    skills.sort_by(|a, b| a.name.cmp(&b.name));
    skills
}

fn read(dir: &Path) -> Skill {
    let file_path = dir.join("SKILL.md");
    let fallback_name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut skill = Skill {
        name: fallback_name,
        file_path: file_path.clone(),
        base_dir: dir.to_path_buf(),
        ..Skill::default()
    };
    let text = match std::fs::metadata(&file_path) {
        Ok(meta) if meta.len() > SKILL_FILE_BYTES_MAX => {
            skill.problem = Some(format!(
                "SKILL.md is larger than {SKILL_FILE_BYTES_MAX} bytes"
            ));
            return skill;
        }
        _ => match std::fs::read_to_string(&file_path) {
            Ok(text) => text,
            Err(error) => {
                skill.problem = Some(format!("SKILL.md cannot be read: {error}"));
                return skill;
            }
        },
    };
    if let Err(problem) = frontmatter(&text, &mut skill) {
        skill.problem = Some(problem);
    }
    skill
}

/// Reads the frontmatter into `skill`.
fn frontmatter(text: &str, skill: &mut Skill) -> Result<(), String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("---") {
        return Err("SKILL.md has no frontmatter (--- name/description ---)".to_owned());
    }
    let mut closed = false;
    for line in lines.by_ref() {
        if line.trim() == "---" {
            closed = true;
            break;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("frontmatter line is not key: value: {line}"));
        };
        if line.starts_with([' ', '\t']) {
            return Err(format!(
                "nested frontmatter is not supported (write metadata as one line of JSON): {line}"
            ));
        }
        let value = unquote(value.trim());
        match key.trim() {
            "name" => skill.name = value.to_owned(),
            "description" => skill.description = value.to_owned(),
            "homepage" => skill.homepage = Some(value.to_owned()),
            "metadata" => metadata(value, skill)?,
            _ => {}
        }
    }
    if !closed {
        return Err("the frontmatter is not closed with ---".to_owned());
    }
    if skill.description.is_empty() {
        return Err("the frontmatter has no description".to_owned());
    }
    Ok(())
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// `metadata: {"openclaw": {"requires": {"bins": [...], "env": [...]}, "os": [...], "emoji": "..."}}`.
fn metadata(value: &str, skill: &mut Skill) -> Result<(), String> {
    let parsed: Value = serde_json::from_str(value)
        .map_err(|error| format!("metadata is not one line of JSON: {error}"))?;
    let Some(ours) = parsed.get("openclaw").or_else(|| parsed.get("clawdbot")) else {
        return Ok(());
    };
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    skill.bins = strings(&ours["requires"]["bins"]);
    skill.env = strings(&ours["requires"]["env"]);
    skill.os = strings(&ours["os"]);
    skill.emoji = ours["emoji"].as_str().map(str::to_owned);
    Ok(())
}

/// The system prompt's skills section (OpenClaw's wording and catalog
/// format), or nothing when no skill is eligible.
pub fn prompt_section(skills: &[Skill]) -> String {
    let eligible: Vec<&Skill> = skills.iter().filter(|skill| skill.eligible()).collect();
    if eligible.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n\n## Skills\nScan <available_skills>. Clear match: read exact <location> with `read`; obey.\n\
         Several: most specific. None: read none.\nUp-front max one. Never invent paths.\n\n\
         The following skills provide specialized instructions for specific tasks.\n\
         Read a skill's file at its listed location when the task matches its description.\n\
         When a skill file references a relative path, resolve it against the skill directory \
         (parent of SKILL.md / dirname of the path) and use that absolute path in tool commands.\n\n\
         <available_skills>\n",
    );
    for skill in eligible {
        out.push_str(&format!(
            "  <skill>\n    <name>{}</name>\n    <description>{}</description>\n    <location>{}</location>\n  </skill>\n",
            xml(&skill.name),
            xml(&skill.description),
            xml(&skill.file_path.display().to_string())
        ));
    }
    out.push_str("</available_skills>");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// One skill as `skills.status` reports it.
pub fn status_entry(skill: &Skill) -> Value {
    let (bins, env, os) = skill.missing();
    let eligible = skill.eligible();
    let mut entry = json!({
        "name": skill.name, "description": skill.description,
        "source": "openclaw-workspace", "bundled": false,
        "filePath": skill.file_path.display().to_string(),
        "baseDir": skill.base_dir.display().to_string(),
        "skillKey": skill.name, "always": false, "disabled": false,
        "blockedByAllowlist": false, "blockedByAgentFilter": false,
        "eligible": eligible, "platformIncompatible": !os.is_empty(),
        "modelVisible": eligible, "userInvocable": false, "commandVisible": false,
        "requirements": {"bins": skill.bins, "anyBins": [], "env": skill.env, "config": [], "os": skill.os},
        "missing": {"bins": bins, "anyBins": [], "env": env, "config": [], "os": os},
        "configChecks": [], "install": [],
    });
    if let Some(emoji) = &skill.emoji {
        entry["emoji"] = json!(emoji);
    }
    if let Some(homepage) = &skill.homepage {
        entry["homepage"] = json!(homepage);
    }
    if let Some(problem) = &skill.problem {
        entry["error"] = json!(problem);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join("skills").join(name)).unwrap();
        std::fs::write(dir.join("skills").join(name).join("SKILL.md"), text).unwrap();
    }

    #[test]
    fn skills_are_read_checked_and_listed_for_the_model() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "weather",
            "---\nname: weather\ndescription: \"Forecasts <today>\"\nmetadata: {\"openclaw\": {\"emoji\": \"☀\", \"requires\": {\"bins\": [\"sh\"]}}}\n---\n# Weather\nUse curl.\n",
        );
        write(
            dir.path(),
            "needs-key",
            "---\nname: needs-key\ndescription: Needs a key\nmetadata: {\"openclaw\": {\"requires\": {\"env\": [\"CLAWBACK_TEST_UNSET_VAR\"], \"bins\": [\"no-such-binary-xyz\"]}}}\n---\n",
        );
        write(dir.path(), "broken", "no frontmatter here\n");
        write(
            dir.path(),
            "nested",
            "---\nname: nested\ndescription: d\nmetadata:\n  openclaw: {}\n---\n",
        );
        let skills = discover(dir.path());
        let names: Vec<&str> = skills.iter().map(|skill| skill.name.as_str()).collect();
        assert_eq!(names, ["broken", "needs-key", "nested", "weather"]);
        let weather = &skills[3];
        assert!(weather.eligible(), "{weather:?}");
        assert_eq!(weather.emoji.as_deref(), Some("☀"));
        let needs = &skills[1];
        assert!(!needs.eligible());
        assert_eq!(needs.missing().0, ["no-such-binary-xyz"]);
        assert_eq!(needs.missing().1, ["CLAWBACK_TEST_UNSET_VAR"]);
        assert!(
            skills[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("frontmatter")
        );
        assert!(
            skills[2]
                .problem
                .as_deref()
                .unwrap()
                .contains("one line of JSON")
        );
        let prompt = prompt_section(&skills);
        assert!(prompt.contains("<name>weather</name>"), "{prompt}");
        assert!(prompt.contains("Forecasts &lt;today&gt;"), "{prompt}");
        assert!(
            !prompt.contains("needs-key") && !prompt.contains("broken"),
            "{prompt}"
        );
        let status = status_entry(needs);
        assert_eq!(status["eligible"], false);
        assert_eq!(status["missing"]["bins"], json!(["no-such-binary-xyz"]));
        assert_eq!(prompt_section(&[]), "");
    }
}
