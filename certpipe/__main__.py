import sys

from certpipe.cli import main

sys.exit(main())
