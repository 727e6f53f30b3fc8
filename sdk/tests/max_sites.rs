//! The maximum number of sites reached: one clear message on stderr, no
//! crash, and the sites already registered keep working. The scenario runs
//! in a child process (this same binary, told by an environment variable)
//! so its stderr can be read and its 65 504 sites touch no other test.

use std::process::Command;

use overrun::__private::{Budget, Guard, Site, SiteKind};

/// The documented maximum (`MAX_SITES` in the sdk's shard tables).
const MAX_SITES: usize = 65_504;

#[overrun::measure(budget = "1s")]
fn kept(x: u64) -> u64 {
    x + 1
}

fn child() {
    kept(0);
    // Every site this binary declares is planned; fill the rest with sites
    // made at run time, and 100 more than fit.
    let before = overrun::snapshot();
    let declared = before.sites.len() + before.never_ran.len();
    for i in 0..(MAX_SITES - declared + 100) {
        let name: &'static str = Box::leak(format!("filler_{i}").into_boxed_str());
        let site: &'static Site = Box::leak(Box::new(Site::new(
            name,
            "fill",
            file!(),
            i as u32,
            SiteKind::Sync,
            Budget::none(),
        )));
        Guard::enter(site).finish(false);
    }
    for i in 1..6 {
        kept(i);
    }
    let snap = overrun::snapshot();
    let kept = snap.site("kept").expect("kept is measured");
    let fillers = snap.sites.iter().filter(|s| s.module == "fill").count();
    println!(
        "sites={} fillers={fillers} kept_calls={}",
        snap.sites.len() + snap.never_ran.len(),
        kept.calls
    );
}

fn main() {
    if std::env::var_os("OVERRUN_MAX_SITES_CHILD").is_some() {
        child();
        return;
    }
    let out = Command::new(std::env::current_exe().expect("this test's binary"))
        .env("OVERRUN_MAX_SITES_CHILD", "1")
        .env("OVERRUN_REPORT", "off")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the child crashed: {stderr}");
    assert!(
        stdout.contains(&format!("sites={MAX_SITES} ")),
        "every site up to the maximum registered: {stdout}"
    );
    assert!(
        stdout.contains("kept_calls=6"),
        "a site registered before keeps counting: {stdout}"
    );
    let told: Vec<&str> = stderr.lines().filter(|l| l.contains("overrun:")).collect();
    assert_eq!(told.len(), 1, "one message, not one per site: {stderr}");
    assert!(
        told[0].contains("reached the maximum of 65504 instrumented sites")
            && told[0].contains("filler_")
            && told[0].contains("keep working"),
        "{}",
        told[0]
    );
    println!("max sites: ok ({stdout})");
    println!(
        "RELIABILITY|storm|the maximum number of sites reached ({MAX_SITES}), 100 more made|one message on stderr, no crash, the earlier site counted all 6 calls ({})|pass",
        stdout.trim()
    );
}
