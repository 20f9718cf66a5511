from meterbridge.cli import main

main()
