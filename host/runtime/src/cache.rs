//! Trust checks for the precompiled-component cache.
//!
//! A cached artifact is native code that wasmtime maps and runs without
//! verifying it, so it may only come from a place no other user can write:
//! the directory and the file must be owned by this process's user and must
//! not be writable by group or others, and the file must be a regular file,
//! not a symlink. Anything else is ignored (the component is compiled again)
//! and the cache is not written to.

use std::io;
use std::path::Path;

#[cfg(unix)]
fn check(meta: &std::fs::Metadata, what: &str) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(io::Error::other(format!("{what} is owned by uid {}, not by this user (uid {me})", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{what} is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check(_meta: &std::fs::Metadata, _what: &str) -> io::Result<()> {
    Ok(())
}

/// The cache directory exists, is a directory, and only this user can write it.
pub(crate) fn trusted_dir(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory (or a symlink)"));
    }
    check(&meta, "the directory")
}

/// A cached artifact is a regular file that only this user can write.
pub(crate) fn trusted_file(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    check(&meta, "the file")
}

/// Creates the cache directory (and parents) private to this user.
pub(crate) fn create_private(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn world_writable_places_are_refused() {
        let dir = std::env::temp_dir().join(format!("weft-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private(&dir).unwrap();
        trusted_dir(&dir).unwrap();
        let f = dir.join("a.cwasm");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        trusted_file(&f).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(trusted_file(&f).is_err(), "a world-writable artifact is not loaded");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(trusted_dir(&dir).is_err(), "a world-writable directory is not trusted");
        let link = dir.join("link.cwasm");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(trusted_file(&link).is_err(), "a symlink is not followed");
        assert!(trusted_dir(Path::new("/tmp")).is_err(), "/tmp is shared");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
