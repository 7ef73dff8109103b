<?php
// The whole app: PHP's own sessions, stored by phpredis in a sessionmesh
// peer (session.save_handler=redis). ?login=NAME logs in (a new session id,
// against fixation), ?logout destroys the session on every peer, and every
// other request counts a view.
session_start();
if (isset($_GET['login'])) { session_regenerate_id(true); $_SESSION['user'] = $_GET['login']; }
if (isset($_GET['logout'])) { session_destroy(); $_SESSION = []; }
else { $_SESSION['views'] = ($_SESSION['views'] ?? 0) + 1; }
header('Content-Type: application/json');
echo json_encode(['user' => $_SESSION['user'] ?? null, 'views' => $_SESSION['views'] ?? 0, 'id' => session_id()]), "\n";
