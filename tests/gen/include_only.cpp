// Compiled with -include <schema>.kivis.h: the header must be valid C++17.
int main()
{
    return 0;
}
