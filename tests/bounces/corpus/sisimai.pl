use strict; use warnings; use Sisimai;
for my $file (@ARGV) {
    open(my $fh, '<:raw', $file) or die "$file: $!";
    local $/; my $text = <$fh>; close $fh;
    $text = "From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" . $text unless $text =~ /\AFrom /;
    my $found = Sisimai->make(\$text, 'delivered' => 1) || [];
    if (!@$found) { print join("\t", $file, "", "", ""), "\n"; next }
    for my $fact (@$found) {
        print join("\t", $file, lc($fact->recipient->address), $fact->reason, ($fact->softbounce == 0 ? 1 : 0)), "\n";
    }
}
