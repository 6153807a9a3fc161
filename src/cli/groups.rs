//! `mcp-gateway group …` and `mcp-gateway policy …`: local groups (beside the ones identity providers send)
//! and the rules that let groups use upstreams. A change reaches every instance within `GUARD_CACHE_SECS`.
use anyhow::bail;
use clap::Subcommand;

use crate::domain::policy::{Rule, check_group_name};
use crate::store::{AuditEntry, AuditKind, Store};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List every group with its members (and where each membership comes from).
    List,
    /// Add or remove a person in a local group.
    #[command(subcommand)]
    Member(MemberCommand),
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Put a person in a local group (made by its first member).
    Add { group: String, username: String },
    /// Take a person out of a local group.
    Remove { group: String, username: String },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Let a group use an upstream (or every upstream, `*`): all its tools, or those --tools allows; never
    /// those --deny-tools names. Once an upstream has a rule, only groups with a rule may use it.
    Allow {
        group: String,
        upstream: String,
        /// Tool names (the upstream's own) or patterns with `*`, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tools: Vec<String>,
        /// Tool names or patterns never allowed to this group, comma-separated.
        #[arg(long, value_delimiter = ',')]
        deny_tools: Vec<String>,
    },
    /// Remove a group's rule for an upstream.
    Remove { group: String, upstream: String },
    /// List the rules.
    List,
}

fn check_group(group: &str) -> anyhow::Result<()> {
    check_group_name(group).map_err(anyhow::Error::msg)
}

pub async fn run_group(cmd: GroupCommand, store: Store) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::List => {
            let users = store.list_users().await?;
            let name_of = |id: &str| users.iter().find(|u| u.id == id).map_or(id.to_owned(), |u| u.username.clone());
            println!("{:<24} {:<24} SOURCE", "GROUP", "MEMBER");
            for m in store.all_memberships().await? {
                println!("{:<24} {:<24} {}", m.name, name_of(&m.user_id), m.source);
            }
        }
        GroupCommand::Member(MemberCommand::Add { group, username }) => {
            check_group(&group)?;
            let Some(user) = store.find_user_by_username(&username).await? else { bail!("no user named {username}") };
            if store.add_local_member(&user.id, &group).await? {
                audit(&store, &user.id, &format!("added to group {group}, by the operator")).await;
            }
            println!("{username} is in {group}");
        }
        GroupCommand::Member(MemberCommand::Remove { group, username }) => {
            let Some(user) = store.find_user_by_username(&username).await? else { bail!("no user named {username}") };
            if !store.remove_local_member(&user.id, &group).await? {
                bail!("{username} is not in the local group {group}");
            }
            audit(&store, &user.id, &format!("removed from group {group}, by the operator")).await;
            println!("{username} is no longer in {group}");
        }
    }
    Ok(())
}

pub async fn run_policy(cmd: PolicyCommand, store: Store) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Allow { group, upstream, tools, deny_tools } => {
            if upstream != "*" && !store.list_upstreams().await?.iter().any(|u| u.upstream.name == upstream) {
                bail!("no upstream named {upstream} (or use * for every upstream)");
            }
            let rule = Rule { group, upstream, allow: tools, deny: deny_tools };
            rule.validate().map_err(anyhow::Error::msg)?;
            store.save_policy_rule(rule.to_row()).await?;
            let detail = format!("policy: {}, by the operator", rule.describe());
            store.audit(AuditKind::GroupChanged, AuditEntry { detail: Some(&detail), ..AuditEntry::default() }).await;
            println!("{}", rule.describe());
        }
        PolicyCommand::Remove { group, upstream } => {
            if !store.remove_policy_rule(&group, &upstream).await? {
                bail!("no rule for group {group} and upstream {upstream}");
            }
            let detail = format!("policy: rule of group {group} for {upstream} removed, by the operator");
            store.audit(AuditKind::GroupChanged, AuditEntry { detail: Some(&detail), ..AuditEntry::default() }).await;
            println!("removed the rule of {group} for {upstream}");
        }
        PolicyCommand::List => {
            for row in store.policy_rules().await? {
                println!("{}", Rule::from_row(&row).describe());
            }
        }
    }
    Ok(())
}

async fn audit(store: &Store, user_id: &str, detail: &str) {
    let entry = AuditEntry { user_id: Some(user_id), detail: Some(detail), ..AuditEntry::default() };
    store.audit(AuditKind::GroupChanged, entry).await;
}
