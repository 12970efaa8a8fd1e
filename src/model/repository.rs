//! The model repository scan, in Triton's layout:
//! `<repo>/<model>/[config.pbtxt]` and `<repo>/<model>/<version>/model.onnx`.
//!
//! The scan reads directory listings and `config.pbtxt` files only; model
//! files are parsed later, inside the lockdown (see `sandbox`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::pbtxt::{self, ModelConfigFile, VersionPolicy};

/// A start-up error. Messages name the file and the reason: they go to the
/// operator's terminal, never to a client.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A directory or file could not be read.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    /// A `config.pbtxt` is malformed.
    #[error("{path}: {source}")]
    Config { path: PathBuf, source: pbtxt::PbtxtError },
    /// A `config.pbtxt` contradicts the repository.
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A model directory has no version to serve.
    #[error("model '{model}' ({path}): {reason}")]
    NoVersions { model: String, path: PathBuf, reason: String },
    /// The repository has no model at all.
    #[error("{0}: no models found (expected <repository>/<model>/<version>/model.onnx)")]
    Empty(PathBuf),
}

/// One version directory to load.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSource {
    pub version: u64,
    pub path: PathBuf,
}

/// One model directory, scanned but not parsed.
#[derive(Debug, Clone)]
pub struct ModelSource {
    pub name: String,
    pub dir: PathBuf,
    pub config: Option<ModelConfigFile>,
    pub config_path: PathBuf,
    /// Ascending.
    pub versions: Vec<VersionSource>,
}

fn io_err(path: &Path, e: std::io::Error) -> RepositoryError {
    RepositoryError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

/// Scans a repository. Models come back sorted by name.
pub fn scan(root: &Path) -> Result<Vec<ModelSource>, RepositoryError> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(root).map_err(|e| io_err(root, e))? {
        let entry = entry.map_err(|e| io_err(root, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %path.display(), "skipping a model directory whose name is not UTF-8");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        names.insert(name);
    }
    let mut models = Vec::new();
    for name in names {
        models.push(scan_model(root, &name)?);
    }
    if models.is_empty() {
        return Err(RepositoryError::Empty(root.to_path_buf()));
    }
    Ok(models)
}

fn scan_model(root: &Path, name: &str) -> Result<ModelSource, RepositoryError> {
    let dir = root.join(name);
    let config_path = dir.join("config.pbtxt");
    let config = match std::fs::read(&config_path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| RepositoryError::Invalid { path: config_path.clone(), reason: "not valid UTF-8".into() })?;
            let cfg = pbtxt::parse(&text).map_err(|source| RepositoryError::Config { path: config_path.clone(), source })?;
            for field in &cfg.ignored {
                tracing::warn!(file = %config_path.display(), field, "config field is not supported by warden and is ignored");
            }
            if let Some(n) = &cfg.name
                && n != name
            {
                return Err(RepositoryError::Invalid {
                    path: config_path,
                    reason: format!("name '{n}' does not match the model directory '{name}'"),
                });
            }
            if let Some(p) = cfg.platform.as_deref().or(cfg.backend.as_deref())
                && !matches!(p, "onnxruntime_onnx" | "onnxruntime")
            {
                return Err(RepositoryError::Invalid {
                    path: config_path,
                    reason: format!("platform/backend '{p}' is not supported (warden serves onnxruntime_onnx models)"),
                });
            }
            Some(cfg)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&config_path, e)),
    };

    let mut available = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
        let entry = entry.map_err(|e| io_err(&dir, e))?;
        if !entry.path().is_dir() {
            continue;
        }
        let fname = entry.file_name();
        let Some(v) = fname.to_str().and_then(|s| s.parse::<u64>().ok()).filter(|&v| v > 0 && fname.to_str() == Some(&v.to_string()))
        else {
            tracing::warn!(path = %entry.path().display(), "ignoring a directory that is not a positive version number");
            continue;
        };
        available.push(v);
    }
    available.sort_unstable();
    let policy = config.as_ref().and_then(|c| c.version_policy.clone()).unwrap_or_default();
    let chosen: Vec<u64> = match &policy {
        VersionPolicy::All => available.clone(),
        VersionPolicy::Latest(n) => available.iter().rev().take(*n as usize).rev().copied().collect(),
        VersionPolicy::Specific(want) => {
            for v in want {
                if !available.contains(v) {
                    return Err(RepositoryError::Invalid {
                        path: config_path,
                        reason: format!("version_policy names version {v}, but {} has no directory '{v}'", dir.display()),
                    });
                }
            }
            let mut w = want.clone();
            w.sort_unstable();
            w.dedup();
            w
        }
    };
    if chosen.is_empty() {
        return Err(RepositoryError::NoVersions {
            model: name.into(),
            path: dir,
            reason: "no version directory (expected <model>/<version>/model.onnx with a positive integer version)".into(),
        });
    }
    let mut versions = Vec::new();
    for v in chosen {
        let path = dir.join(v.to_string()).join("model.onnx");
        if !path.is_file() {
            return Err(RepositoryError::NoVersions { model: name.into(), path, reason: "model.onnx is missing".into() });
        }
        versions.push(VersionSource { version: v, path });
    }
    Ok(ModelSource { name: name.into(), dir, config, config_path, versions })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempRepo(PathBuf);
    impl TempRepo {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("warden-repo-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempRepo(p)
        }
        fn file(&self, rel: &str, content: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
    }
    impl Drop for TempRepo {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn default_policy_serves_the_latest_version() {
        let r = TempRepo::new("latest");
        r.file("a/1/model.onnx", "");
        r.file("a/3/model.onnx", "");
        r.file("a/notes/readme", "");
        r.file("b/2/model.onnx", "");
        let m = scan(&r.0).unwrap();
        assert_eq!(m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m[0].versions.iter().map(|v| v.version).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn policies_from_config() {
        let r = TempRepo::new("policies");
        for v in [1, 2, 3] {
            r.file(&format!("a/{v}/model.onnx"), "");
        }
        r.file("a/config.pbtxt", "version_policy { all { } }");
        assert_eq!(scan(&r.0).unwrap()[0].versions.len(), 3);
        r.file("a/config.pbtxt", "version_policy { latest { num_versions: 2 } }");
        assert_eq!(scan(&r.0).unwrap()[0].versions.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 3]);
        r.file("a/config.pbtxt", "version_policy { specific { versions: [3, 1] } }");
        assert_eq!(scan(&r.0).unwrap()[0].versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 3]);
        r.file("a/config.pbtxt", "version_policy { specific { versions: 7 } }");
        let e = scan(&r.0).unwrap_err().to_string();
        assert!(e.contains("config.pbtxt") && e.contains('7'), "{e}");
    }

    #[test]
    fn errors_name_the_file() {
        let r = TempRepo::new("errors");
        r.file("a/1/model.onnx", "");
        r.file("a/config.pbtxt", "name: \"a\"\nmax_batch_size: x\n");
        let e = scan(&r.0).unwrap_err().to_string();
        assert!(e.contains("a/config.pbtxt") && e.contains("line 2"), "{e}");
        r.file("a/config.pbtxt", "name: \"other\"");
        assert!(scan(&r.0).unwrap_err().to_string().contains("does not match"));
        r.file("a/config.pbtxt", "platform: \"tensorflow_savedmodel\"");
        assert!(scan(&r.0).unwrap_err().to_string().contains("not supported"));
    }

    #[test]
    fn missing_model_file_and_empty_repo() {
        let r = TempRepo::new("missing");
        assert!(matches!(scan(&r.0), Err(RepositoryError::Empty(_))));
        std::fs::create_dir_all(r.0.join("a/1")).unwrap();
        assert!(scan(&r.0).unwrap_err().to_string().contains("model.onnx is missing"));
        r.file("b/x/model.onnx", "");
        std::fs::remove_dir_all(r.0.join("a")).unwrap();
        assert!(scan(&r.0).unwrap_err().to_string().contains("no version directory"));
        assert!(scan(&r.0.join("nope")).is_err());
    }
}
