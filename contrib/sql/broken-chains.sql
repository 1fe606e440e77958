-- Images whose backing chain is broken (latest complete scan): the reference
-- as written, where it resolved (or would have), and why it failed.
SELECT l.path, l.backing, l.target_path, l.status, i.error
  FROM v_links l JOIN v_images i ON i.path = l.path
 WHERE l.status <> 'ok'
 ORDER BY l.path;
