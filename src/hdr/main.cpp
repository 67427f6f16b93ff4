// gitopperhdr: not implemented yet.

#include <cstdio>

int main()
{
    std::fputs("gitopperhdr: not yet implemented\n", stderr);
    return 1;
}
