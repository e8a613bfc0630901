//! A chat room, one actor per room: the family `room-*` (see `rooms.toml`) makes every
//! `room-NAME` an actor, created by its first message and passivated when idle.
//!
//! `{"post": {"user": u, "text": t}}` adds a post and replies with its number;
//! `{"read": {"since": n}}` replies with the posts after the first n (all without `since`).

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json};

#[derive(Clone, Serialize, Deserialize)]
struct Post {
    user: String,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct Room {
    posts: Vec<Post>,
}

/// Longest post, in bytes.
const MAX_TEXT: usize = 4096;

struct Rooms;

impl Actor for Rooms {
    type State = Room;

    fn init(_: Value) -> Result<Room, String> {
        Ok(Room { posts: Vec::new() })
    }

    fn handle(mut room: Room, input: Input) -> Result<(Output, Room), String> {
        let p = input.payload().ok_or("a room takes messages and requests")?;
        if let Some(post) = p.get("post") {
            let user = post["user"].as_str().ok_or("a post needs a \"user\"")?;
            let text = post["text"].as_str().ok_or("a post needs a \"text\"")?;
            if text.len() > MAX_TEXT {
                return Err(format!("a post is at most {MAX_TEXT} bytes"));
            }
            room.posts.push(Post {
                user: user.to_string(),
                text: text.to_string(),
            });
            let n = room.posts.len();
            return Ok((Output::reply(json!({"post": n})), room));
        }
        if let Some(read) = p.get("read") {
            let since = read["since"].as_u64().unwrap_or(0) as usize;
            let posts: Vec<&Post> = room.posts.iter().skip(since).collect();
            let reply = json!({"posts": posts, "count": room.posts.len()});
            return Ok((Output::reply(reply), room));
        }
        Err("expected {\"post\": {\"user\", \"text\"}} or {\"read\": {\"since\"?}}".into())
    }
}

theater_guest::export_actor!(Rooms);
