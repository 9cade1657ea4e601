# Doxygen's INPUT_FILTER for include/zest (docs/Doxyfile): zest's headers
# are commented with plain // comments, which Doxygen ignores. This turns
# them into Doxygen comments on the fly, so the headers need no markup:
#  - the comment block a file starts with describes the file (\file);
#  - a comment line before a declaration documents it (///);
#  - a comment after code on the same line documents that member (///<);
#  - section markers ("// --- names ---") stay plain comments.
# The text is shown as written: characters Doxygen would read as markup
# (\ @ < > # &: commands, HTML tags, links) are escaped.

# The comment text `s`, with Doxygen's markup characters escaped.
function esc(s) {
  gsub(/\\/, "\\\\\\\\", s)
  gsub(/[@<>#&]/, "\\\\&", s)
  return s
}
FNR == 1 { in_top = 0; started = 0 }
!started && /^\/\// { in_top = 1; started = 1; print "/// \\file" }
in_top && /^\/\// { print "///" esc(substr($0, 3)); next }
in_top { in_top = 0 }
{ started = 1 }
/^[ \t]*\/\/ ---/ { print; next }
/^[ \t]*\/\/([^\/!]|$)/ {
  i = index($0, "//")
  print substr($0, 1, i - 1) "///" esc(substr($0, i + 2))
  next
}
/[;,{)][ \t]+\/\/ / && !/"[^"]*\/\/[^"]*"/ {
  i = index($0, "// ")
  code = substr($0, 1, i - 1)
  sub(/[ \t]+$/, "", code)
  print code "  ///< " esc(substr($0, i + 3))
  next
}
{ print }
